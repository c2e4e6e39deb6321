"""Results out, through a real gateway: the SR to Orthanc (C-STORE and STOW-RS) and the ORU^R01 to a RIS
(hl7apy's MLLP server), each exactly once, through a refusal, an outage of each and a kill -9 of the bridge."""

from __future__ import annotations

import io
import json
import signal
import subprocess

import highdicom as hd
import hl7
from hl7apy.core import Message
from pydicom import Dataset, dcmread

from services.bridge import codes, oru
from services.bridge.pacs import sr
from tests.bridge.conftest import x_ray
from tests.bridge.pacs.helpers import our_srs
from tests.bridge.test_analysis import _push
from tests.bridge.test_operator_cli import cli
from tests.pacs_server import PASSWORD, USER, started
from tests.waiting import wait_until

IDENTIFIERS = ("Zhang", "MRN-SECRET", "ACC-SECRET", "19510203")


def _sending(pacs, ris, **more: str) -> dict[str, str]:
    return {
        "CXR_BRIDGE_SR_HOST": "127.0.0.1",
        "CXR_BRIDGE_SR_PORT": str(pacs.dicom_port),
        "CXR_BRIDGE_SR_AE_TITLE": pacs.ae_title,
        "CXR_BRIDGE_RIS_HOST": "127.0.0.1",
        "CXR_BRIDGE_RIS_PORT": str(ris.port),
        "CXR_BRIDGE_FACILITY": "TESTHOSP",
        "CXR_BRIDGE_RETRY_BASE_S": "1",
        "CXR_BRIDGE_RETRY_MAX_S": "2",
        **more,
    }


def _all_delivered(bridge, count: int) -> bool:
    rows = bridge.deliveries()
    return len(rows) == count and all(state == "delivered" for _, _, state, _, _ in rows)


def _observations(message: Message, code) -> list[list[str]]:
    """OBX-5 of each observation coded `code`: one string per repetition (a TX line)."""
    group = message.oru_r01_patient_result.oru_r01_order_observation
    found = [observation.obx for observation in group.oru_r01_observation if observation.obx.obx_3.obx_3_1.value == code.value]
    assert all(obx.obx_11.value == "P" for obx in found)  # every observation preliminary
    return [[field.value for field in obx.obx_5] for obx in found]


def _observation(message: Message, code) -> list[str]:
    [one] = _observations(message, code)
    return one


def _srs_of(pacs, source: Dataset) -> list[Dataset]:
    return [one for one in our_srs(pacs.client(), str(source.StudyInstanceUID)) if sr.source_uid(one) == source.SOPInstanceUID]


def test_the_sr_and_the_oru_reach_the_pacs_and_the_ris_once_each_through_a_refusal(
    start_bridge, start_gateway, orthanc, ris, tmp_path
):
    ris.answers = ["AE"]  # refused once: sent again with the same control id, then AA
    gateway = start_gateway()
    stow = {"CXR_BRIDGE_STOW_URL": orthanc.url, "CXR_BRIDGE_STOW_USERNAME": USER, "CXR_BRIDGE_STOW_PASSWORD": PASSWORD}
    bridge = start_bridge(CXR_BRIDGE_GATEWAY_URL=gateway.url, **_sending(orthanc, ris, **stow))
    path = x_ray(tmp_path)
    source = dcmread(path)
    sop = _push(bridge, path)
    wait_until(lambda: _all_delivered(bridge, 3), 600, "the SR by C-STORE and STOW, and the ORU, delivered")
    answer = json.loads(bridge.result(sop) or "{}")

    # The RIS: the same message twice (AE, then AA), recognisable by its control id.
    assert [one.answer for one in ris.received] == ["AE", "AA"]
    assert ris.acknowledged() == [oru.control_id(sop)]
    assert ris.received[0].message.msh.msh_10.value == ris.received[1].message.msh.msh_10.value
    message = ris.received[1].message
    unescape = hl7.parse(ris.received[1].text).unescape  # python-hl7 reading what hl7apy parsed
    assert message.msh.msh_9.value == "ORU^R01^ORU_R01" and message.msh.msh_12.value == "2.5.1"
    assert message.msh.msh_4.value == "TESTHOSP" and message.msh.msh_18.value == "UNICODE UTF-8"
    patient = message.oru_r01_patient_result.oru_r01_patient.pid
    assert patient.pid_3.cx_1.value == source.PatientID and patient.pid_5.xpn_1.value == "Zhang"
    assert patient.pid_7.value == source.PatientBirthDate
    obr = message.oru_r01_patient_result.oru_r01_order_observation.obr
    assert obr.obr_2.value == obr.obr_3.value == source.AccessionNumber
    assert obr.obr_4.value == "399208008^Plain X-ray of chest^SCT" and obr.obr_25.value == "P"
    assert _observation(message, codes.DICOM_STUDY) == [source.StudyInstanceUID]
    probability = answer["cxr"]["classification"]["probabilities"]["PNEUMONIA"]
    assert abs(float(_observation(message, codes.PROBABILITY)[0]) - probability) < 1e-6
    predicted = codes.CLASS_CODES[answer["cxr"]["classification"]["predicted_class"]]
    assert _observation(message, codes.PNEUMONIA)[0].split("^")[0] == predicted.value
    for code, said in [
        (codes.REPORT, answer["report"]),
        (codes.FRACTURE_TEXT, answer["cxr"]["fracture"]["text"]),
        (codes.DISCLAIMER, answer["cxr"]["disclaimer"]),
    ]:  # a repetition per line (long lines wrapped at spaces: tests/bridge/test_oru.py), every word as said
        assert " ".join(unescape(line) for line in _observation(message, code)).split() == said.split(), code.value
    models = [lines[0] for lines in _observations(message, codes.MODEL)]
    assert len(models) == len(answer["cxr"]["models"])
    assert any("stand-in model: not for clinical use" in line for line in models)
    ris_row = next(row for row in bridge.deliveries() if row[1] == "ris")
    assert ris_row[2:4] == ("delivered", 2) and ris_row[4] == "ACK AA"

    # The PACS: one SR for the image, though it was sent twice (C-STORE and STOW): its UIDs are derived.
    [stored] = _srs_of(orthanc, source)
    assert stored.SOPInstanceUID == sr.result_instance_uid(sop) and stored.VerificationFlag == "UNVERIFIED"
    assert stored.AccessionNumber == source.AccessionNumber and stored.StudyInstanceUID == source.StudyInstanceUID
    report_read = hd.sr.srread(io.BytesIO(_part10(stored)))
    assert report_read.SeriesDescription == sr.SERIES_DESCRIPTION
    (tmp_path / "sr.dcm").write_bytes(_part10(stored))
    dump = subprocess.run(["dsrdump", "+Pl", str(tmp_path / "sr.dcm")], capture_output=True, text=True, timeout=30)
    assert dump.returncode == 0 and "UNVERIFIED" in dump.stdout and answer["cxr"]["disclaimer"][:40] in dump.stdout

    logged = (tmp_path / "bridge.log").read_text()
    assert sop in logged and not any(identifier in logged for identifier in IDENTIFIERS)


def _part10(dataset: Dataset) -> bytes:
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_a_pacs_and_a_ris_away_and_a_kill_9_lose_nothing_and_send_nothing_twice(start_bridge, start_gateway, ris, tmp_path):
    pacs = started(tmp_path / "pacs")
    try:
        pacs.stop()
        ris.stop()  # both away while the results are made
        gateway = start_gateway()
        away = start_bridge(CXR_BRIDGE_GATEWAY_URL=gateway.url, **_sending(pacs, ris, CXR_BRIDGE_RETRY_BASE_S="3"))
        paths = [x_ray(tmp_path, f"dx{index}") for index in range(2)]
        sops = [_push(away, path) for path in paths]

        def tried_and_pending() -> bool:
            rows = away.deliveries()
            return len(rows) == 4 and all(state == "pending" and attempts >= 1 for _, _, state, attempts, _ in rows)

        wait_until(tried_and_pending, 600, "both analysed, each delivery tried and pending")
        details = {destination: detail for _, destination, _, _, detail in away.deliveries()}
        assert "unreachable" in details["ris"] and "not established" in details["pacs-dimse"]
        away.stop(signal.SIGKILL)  # kill -9 with four deliveries queued

        pacs.start()
        ris.start()
        back = start_bridge(CXR_BRIDGE_GATEWAY_URL=gateway.url, **_sending(pacs, ris))
        wait_until(lambda: _all_delivered(back, 4), 120, "every delivery made once the destinations are back")
        assert sorted(ris.acknowledged()) == sorted(oru.control_id(sop) for sop in sops)  # each once
        assert len(ris.received) == 2
        for path in paths:
            assert len(_srs_of(pacs, dcmread(path))) == 1
        assert [state for _, state, _, _ in back.rows()] == ["analysed", "analysed"]  # not analysed again
    finally:
        pacs.stop()


def test_a_ris_that_never_answers_is_dead_lettered_with_why_and_replayed(start_bridge, start_gateway, ris, tmp_path):
    ris.answers = ["silent", "silent"]
    gateway = start_gateway()
    settings = {
        "CXR_BRIDGE_GATEWAY_URL": gateway.url,
        "CXR_BRIDGE_RIS_HOST": "127.0.0.1",
        "CXR_BRIDGE_RIS_PORT": str(ris.port),
        "CXR_BRIDGE_SEND_TIMEOUT_S": "1",
        "CXR_BRIDGE_MAX_ATTEMPTS": "2",
        "CXR_BRIDGE_RETRY_BASE_S": "0.5",
    }
    bridge = start_bridge(**settings)
    sop = _push(bridge, x_ray(tmp_path))
    wait_until(lambda: [row[2] for row in bridge.deliveries()] == ["dead"], 600, "the ORU dead-lettered")
    listed = cli(bridge, "dead-letters").stdout
    assert f"{sop}  undelivered to ris  after 2 attempt(s): no ACK from the RIS within 1 s" in listed
    echo = subprocess.run(["echoscu", "-aec", "CXRSERVE", "127.0.0.1", str(bridge.port)], capture_output=True, timeout=30)
    assert echo.returncode == 0  # the bridge keeps serving
    replayed = cli(bridge, "replay", sop, "--destination", "ris")
    assert replayed.returncode == 0 and "0 instance(s) back in the queue, 1 delivery(ies) back in the outbox" in replayed.stdout
    wait_until(lambda: [row[2] for row in bridge.deliveries()] == ["delivered"], 60, "delivered after the replay")
    assert [one.answer for one in ris.received] == ["silent", "silent", "AA"] and ris.acknowledged() == [oru.control_id(sop)]
