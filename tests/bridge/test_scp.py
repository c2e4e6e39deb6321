"""The Storage SCP against real DICOM peers: DCMTK's echoscu and storescu, and pynetdicom as an SCU.

No gateway runs here: the bridge's analyser finds it unreachable and retries, which is what these tests
need (what arrived stays spooled). The analysis through a real gateway is in test_analysis.py.
"""

from __future__ import annotations

import signal
import socket
import struct
import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread
from pynetdicom import AE
from pynetdicom.sop_class import DigitalXRayImageStorageForPresentation

from tests.bridge.conftest import x_ray
from tests.dicom_files import SECRETS
from tests.waiting import wait_until


def storescu(bridge, path, *flags: str) -> subprocess.CompletedProcess[str]:
    command = ["storescu", "-v", *flags, "-aec", "CXRSERVE", "127.0.0.1", str(bridge.port), str(path)]
    return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)


def store_status(bridge, path, calling: str = "PYNETDICOM", priority: int = 2) -> tuple[int, str]:
    """(Status, Error Comment) of one C-STORE of `path`'s bytes as they are, sent by pynetdicom (its default
    priority: LOW; MEDIUM is 0, HIGH 1)."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(DigitalXRayImageStorageForPresentation)
    association = ae.associate("127.0.0.1", bridge.port, ae_title="CXRSERVE")
    assert association.is_established
    try:
        status = association.send_c_store(path, priority=priority)
    finally:
        association.release()
    return int(status.Status), str(status.get("ErrorComment", ""))


def test_echo_and_an_x_ray_spooled_durably_before_success(start_bridge, tmp_path):
    bridge = start_bridge()
    assert subprocess.run(["echoscu", "-aec", "CXRSERVE", "127.0.0.1", str(bridge.port)], timeout=30).returncode == 0
    dx = x_ray(tmp_path)
    sent = storescu(bridge, dx)
    assert sent.returncode == 0 and "Received Store Response (Success)" in sent.stdout
    sop = dcmread(dx).SOPInstanceUID
    # Success was answered: the row is committed and the file is on disk, byte for byte what was sent
    [(row_sop, state, _, _)] = bridge.rows()
    assert (row_sop, state) == (sop, "received")
    [spooled] = list((bridge.state_dir / "instances").glob("*.dcm"))
    assert dcmread(spooled).SOPInstanceUID == sop and dcmread(spooled).PixelData == dcmread(dx).PixelData
    assert storescu(bridge, dx).returncode == 0 and len(bridge.rows()) == 1  # a resend: recognised, kept once
    assert [line["outcome"] for line in bridge.lines("c-store")] == ["spooled", "duplicate"]


@pytest.mark.parametrize(
    ("header", "named"),
    [
        ({"modality": "CT"}, "modality CT is not analysed"),
        ({"body_part": "KNEE"}, "body part KNEE is not analysed"),
    ],
)
def test_what_the_policy_does_not_analyse_is_refused_with_a_status_naming_why(start_bridge, tmp_path, header, named):
    bridge = start_bridge()
    refused = x_ray(tmp_path, "refused", **header)
    status, comment = store_status(bridge, refused)
    assert status == 0xC000 and comment.startswith(named)
    assert "Error: CannotUnderstand" in storescu(bridge, refused).stdout  # DCMTK reads the same status
    assert bridge.rows() == [] and list((bridge.state_dir / "instances").glob("*.dcm")) == []  # nothing queued


def test_a_truncated_dataset_is_refused_and_the_bridge_keeps_serving(start_bridge, tmp_path):
    bridge = start_bridge()
    whole = x_ray(tmp_path).read_bytes()
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(whole[: len(whole) // 3])
    status, comment = store_status(bridge, truncated)
    assert status == 0xC000 and "truncated" in comment
    assert store_status(bridge, x_ray(tmp_path, "after")) == (0, "")  # still serving
    assert len(bridge.rows()) == 1


def test_a_2_gb_claimed_pdu_length_costs_no_memory_and_is_dropped_when_the_peer_goes_silent(start_bridge, tmp_path):
    bridge = start_bridge(CXR_BRIDGE_NETWORK_TIMEOUT_S="2")
    with socket.create_connection(("127.0.0.1", bridge.port), timeout=30) as hostile:
        # An A-ASSOCIATE-RQ PDU whose length field claims 2 GiB, then a little of it, then nothing.
        hostile.sendall(struct.pack(">BBL", 0x01, 0, 2**31) + b"\0" * 1024)
        echo = subprocess.run(["echoscu", "-aec", "CXRSERVE", "127.0.0.1", str(bridge.port)], capture_output=True, timeout=30)
        assert echo.returncode == 0  # others are served meanwhile
        rss_kib = int(Path(f"/proc/{bridge.process.pid}/status").read_text().split("VmRSS:")[1].split()[0])
        assert rss_kib < 400 * 1024  # nothing is allocated for the claim
        wait_until(lambda: "before the entire PDU was received" in bridge.log.read_text(), 20, "the association dropped")
    assert store_status(bridge, x_ray(tmp_path)) == (0, "")  # and a real C-STORE after it
    assert len(bridge.rows()) == 1


def test_callers_off_the_allow_list_are_rejected_at_association(start_bridge, tmp_path):
    bridge = start_bridge(CXR_BRIDGE_ALLOWED_CALLERS="ORTHANC, MODALITY1")
    stranger = storescu(bridge, x_ray(tmp_path), "-aet", "STRANGER")
    assert stranger.returncode != 0 and "Association Rejected" in stranger.stdout
    assert storescu(bridge, x_ray(tmp_path), "-aet", "MODALITY1").returncode == 0
    assert len(bridge.rows()) == 1


def test_the_analyser_retries_while_the_gateway_is_away_and_nothing_identifies_the_patient(start_bridge, tmp_path):
    bridge = start_bridge(CXR_BRIDGE_RETRY_BASE_S="0.2", CXR_BRIDGE_RETRY_MAX_S="0.5")
    assert storescu(bridge, x_ray(tmp_path)).returncode == 0
    wait_until(lambda: bridge.rows()[0][2] >= 3, 20, "three attempts")
    [(_, state, _, detail)] = bridge.rows()
    assert state == "received" and detail.startswith("gateway unreachable")
    assert {line["outcome"] for line in bridge.lines("analysis")} == {"retry"}
    assert bridge.stop(signal.SIGTERM) == 0  # a clean stop
    log = bridge.log.read_text()
    assert not [secret for secret in SECRETS if secret in log]


def test_orthanc_pushes_a_study_and_the_bridge_keeps_each_image_once(start_bridge, orthanc, tmp_path):
    """The department's way: the PACS sends (Orthanc's own C-STORE SCU, driven by its REST API), the bridge keeps."""
    bridge = start_bridge()
    with orthanc.rest() as pacs:
        uploaded = [pacs.post("/instances", content=x_ray(tmp_path, f"p{n}").read_bytes()).json() for n in range(2)]
        modality = {"AET": "CXRSERVE", "Host": "127.0.0.1", "Port": bridge.port}
        assert pacs.put("/modalities/cxr-bridge", json=modality).status_code == 200
        job = {"Resources": [item["ID"] for item in uploaded], "Synchronous": True}
        sent = pacs.post("/modalities/cxr-bridge/store", json=job)
        assert sent.status_code == 200 and sent.json()["FailedInstancesCount"] == 0
        assert pacs.post("/modalities/cxr-bridge/store", json=job).status_code == 200  # sent again: kept once
    assert sorted(sop for sop, state, _, _ in bridge.rows() if state == "received") == sorted(
        dcmread(tmp_path / f"p{n}.dcm").SOPInstanceUID for n in range(2)
    )
    assert [line["outcome"] for line in bridge.lines("c-store")] == ["spooled", "spooled", "duplicate", "duplicate"]


def test_a_high_priority_c_store_is_kept_as_stat_and_low_and_medium_ones_as_routine(start_bridge, tmp_path):
    bridge = start_bridge(CXR_BRIDGE_RETRY_BASE_S="600")  # no gateway: all three stay queued
    sent = {"low": 0x0002, "medium": 0x0000, "high": 0x0001}
    sops = {}
    for name, priority in sent.items():
        path = x_ray(tmp_path, name)
        assert store_status(bridge, path, priority=priority) == (0, "")
        sops[str(dcmread(path).SOPInstanceUID)] = name
    kept = {sops[sop]: priority for sop, priority in bridge.priorities()}
    assert kept == {"low": "routine", "medium": "routine", "high": "stat"}
