"""A radiologist's review in Chromium, end to end: signed in through the hospital's OpenID Provider (a real
oidc-provider), the worklist read from a real Orthanc through the bridge's review API, three results reviewed
by keyboard and signed; the verified SRs read back from Orthanc (highdicom, DCMTK's dsrdump), the ORUs at a
real MLLP peer (hl7apy), the audit trail, and who may not review. No model runs: the results are preliminary
SRs as the bridge stores them (tests/bridge/pacs/test_review.py builds them from answers of the gateway's shape).
"""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import highdicom as hd
import httpx
import pytest
from pydicom import dcmwrite
from pydicom.uid import generate_uid
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.wait import WebDriverWait

from gateway.audit_export import fhir_audit_event
from scripts.launcher.process import free_port
from scripts.peers.ris import RisPeer
from services.bridge.pacs import verified
from services.bridge.pacs.dicomweb import InstanceRef, Pacs
from services.bridge.pacs.settings import PacsSettings
from tests.bridge.conftest import Bridge
from tests.bridge.pacs.helpers import NORMAL, PNEUMONIA, measurement_groups
from tests.bridge.pacs.test_review import _result
from tests.gateway.conftest import openid_provider
from tests.gateway.test_people import bearer, token_of
from tests.gateway.ui.conftest import UiPage
from tests.gateway.ui.test_login import sign_in
from tests.pacs_server import PASSWORD, USER, started

TOKEN = "review-token-" + "fedcba9876543210" * 2
SITE = "General Hospital"  # dr.chen's site: a study-level restriction (GATEWAY_OIDC_SITES_CLAIM) is on
ACCOUNTS = {
    "dr.chen": {"name": "Wei Chen", "roles": ["radiologist"], "sites": [SITE]},
    "visitor": {"name": "Visitor", "roles": []},
}


@pytest.fixture(scope="module")
def desk(start_gateway_without_models, tmp_path_factory):
    """(gateway, bridge, pacs, ris, provider, the three results, one of another site): a PACS of its own, so the
    worklist is these three."""
    folder = tmp_path_factory.mktemp("review")
    for name in ("orthanc", "openid"):
        (folder / name).mkdir()
    orthanc = started(folder / "orthanc")
    pacs = Pacs(PacsSettings(url=orthanc.url, username=USER, password=PASSWORD))
    ris = RisPeer().start()
    pacs_env = {"CXR_PACS_URL": orthanc.url, "CXR_PACS_USERNAME": USER, "CXR_PACS_PASSWORD": PASSWORD}
    bridge_env = {"CXR_BRIDGE_GATEWAY_URL": f"http://127.0.0.1:{free_port()}", "CXR_BRIDGE_REVIEW_TOKEN": TOKEN}
    ris_env = {"CXR_BRIDGE_RIS_HOST": "127.0.0.1", "CXR_BRIDGE_RIS_PORT": str(ris.port)}
    bridge = Bridge(folder / "bridge", folder / "bridge.log", {**pacs_env, **bridge_env, **ris_env}).start()
    provider, settings = openid_provider(folder / "openid", ACCOUNTS)
    gateway = start_gateway_without_models(
        **settings,
        GATEWAY_REVIEW_URL=bridge.url,
        GATEWAY_REVIEW_API_KEY=TOKEN,
        GATEWAY_REVIEW_ORGANIZATION="Radiology, General Hospital",
        GATEWAY_OIDC_SITES_CLAIM="sites",
    )
    results = [_result(pacs, jpeg, str(generate_uid()), institution=SITE) for jpeg in (PNEUMONIA, NORMAL, PNEUMONIA)]
    elsewhere = _result(pacs, NORMAL, str(generate_uid()), institution="Another Hospital")
    yield gateway, bridge, pacs, ris, provider, results, elsewhere
    provider.stop()
    bridge.stop()
    ris.stop()
    orthanc.stop()


def _keys(page: UiPage, *keys: str) -> None:
    ActionChains(page.driver).send_keys(*keys).perform()


def _current(page: UiPage) -> str:
    return page.element("result").get_attribute("data-sop") or ""


def _next(page: UiPage, sop_before: str) -> str:
    _keys(page, "j")
    WebDriverWait(page.driver, 30).until(lambda _: _current(page) != sop_before and page.state() == "idle")
    return _current(page)


def _sign(page: UiPage) -> None:
    _keys(page, "s")
    assert page.wait_for_state("signed", "refused", timeout=60) == "signed", page.text("error")


def _verified(pacs: Pacs, ref: InstanceRef, folder: Path):
    stored = pacs.retrieve(InstanceRef(ref.study, verified.verified_series_uid(ref.sop), verified.verified_instance_uid(ref.sop)))
    data = io.BytesIO()
    dcmwrite(data, stored, enforce_file_format=True)
    path = folder / f"{ref.sop}.dcm"
    path.write_bytes(data.getvalue())
    return hd.sr.srread(path), path


def test_a_radiologist_reviews_three_results_by_keyboard_and_the_pacs_and_ris_hold_the_signatures(browser, desk, tmp_path):
    gateway, bridge, pacs, ris, _, results, elsewhere = desk
    browser.delete_all_cookies()
    sign_in(UiPage(browser, gateway.url).open(), "dr.chen")
    browser.get(f"{gateway.url}/ui/review")
    page = UiPage(browser, gateway.url)
    page.wait_for_state("idle", timeout=30)
    assert page.text("user-name") == "dr.chen" and len(browser.find_elements("css selector", "#worklist li")) == 3
    assert "Preliminary AI output for review by a radiologist." in page.text("disclaimer")

    first = _current(page)  # accept everything
    _keys(page, "a", "a")
    _sign(page)
    assert page.text("signature").startswith("Signed by Wei Chen (dr.chen) at ")
    second = _next(page, first)  # reject the fracture finding
    _keys(page, "a", "r")
    _sign(page)
    third = _next(page, second)  # modify pneumonia (the AI said present: absent), accept fracture, edit the report
    _keys(page, "m", "2", "a", "e", " Edited: no consolidation.", Keys.ESCAPE)
    _sign(page)
    page.screenshot("review-signed")
    page.choose_language("zh")  # the labels follow the page's language; the signature's facts stay as signed
    assert page.text("signature").startswith("已由 Wei Chen（dr.chen）于 ") and page.text("worklist-heading").startswith(
        "待复核列表"
    )
    page.choose_language("en")

    refs = {ref.sop: ref for ref in results}
    assert {first, second, third} == set(refs)
    expected = {
        first: {"pneumonia": ("accepted", "present"), "fracture": ("accepted", "absent")},
        second: {"pneumonia": ("accepted", "present"), "fracture": ("rejected", "present")},
        third: {"pneumonia": ("modified", "absent"), "fracture": ("accepted", "absent")},
    }
    for sop, verdicts in expected.items():
        report, path = _verified(pacs, refs[sop], tmp_path)
        assert report.VerificationFlag == "VERIFIED" and report.StudyInstanceUID == refs[sop].study
        observer = report.VerifyingObserverSequence[0]
        assert (
            observer.VerifyingObserverName.family_name == "Wei Chen"
            and observer.VerifyingOrganization == "Radiology, General Hospital"
        )
        assert observer.VerifyingObserverIdentificationCodeSequence[0].CodeValue == "dr.chen"
        predecessor = report.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
        assert predecessor.ReferencedSOPInstanceUID == sop and len(measurement_groups(report)) == 2
        signed = verified.read_verified(report)
        assert {f.ai.finding: (f.verdict, f.state) for f in signed.findings} == verdicts
        assert signed.report_edited is (sop == third)
        dumped = subprocess.run(["dsrdump", str(path)], capture_output=True, text=True, timeout=60)
        assert dumped.returncode == 0 and "Verification Flag   : VERIFIED" in dumped.stdout and "Wei Chen" in dumped.stdout
    assert verified.read_verified(_verified(pacs, refs[third], tmp_path)[0]).report.endswith("Edited: no consolidation.")

    WebDriverWait(browser, 60).until(lambda _: len(ris.received) == 3)
    by_study = {refs[sop].study: sop for sop in refs}
    for received in ris.received:  # F for what was signed as the AI had it, C for a changed result
        order = received.message.oru_r01_patient_result.oru_r01_order_observation
        sop = next(by_study[study] for study in by_study if study in received.text)
        assert order.obr.obr_25.value == ("F" if sop == first else "C"), sop
        assert order.obr.obr_32.value == "dr.chen&Wei Chen"
    logs = bridge.log.read_text() + gateway.log_text()
    assert "Wei Chen" not in logs and "Edited: no consolidation" not in logs  # no names, no report text in a log

    records = [json.loads(line) for line in (gateway.audit_dir / "audit.jsonl").read_text().splitlines()]
    signatures = [r for r in records if "review" in r and r["status"] == 201]
    assert [r["review"]["preliminary_sop"] for r in signatures] == [first, second, third]
    assert signatures[1]["review"]["verdicts"] == {"pneumonia": "accepted", "fracture": "rejected"}
    assert all(
        r["actor"] == "user:dr.chen" and r["study"] and r["endpoint"] == "/v1/reviews/{study}/{series}/{sop}" for r in signatures
    )
    event = fhir_audit_event(signatures[1])  # what an audit repository is sent (validated by fhir.resources)
    uids = {
        e["what"]["identifier"]["value"]: e.get("detail", [])
        for e in event["entity"]
        if e["what"].get("identifier", {}).get("system") == "urn:dicom:uid"
    }
    assert uids[f"urn:oid:{second}"] == [
        {"type": "verdict:pneumonia", "valueString": "accepted"},
        {"type": "verdict:fracture", "valueString": "rejected"},
    ]
    assert f"urn:oid:{verified.verified_instance_uid(second)}" in uids and event["action"] == "C"
    trail = json.dumps(records)
    assert not any(ref.study in trail for ref in results) and "Wei Chen" not in trail  # UIDs of results, no study, no name

    cookie = {"cxr_session": browser.get_cookie("cxr_session")["value"]}
    again = httpx.post(
        f"{gateway.url}/v1/reviews/{refs[first].study}/{refs[first].series}/{first}",
        json={
            "verdicts": [{"finding": "pneumonia", "verdict": "rejected"}, {"finding": "fracture", "verdict": "accepted"}],
            "report": "No.",
            "report_edited": True,
        },
        cookies=cookie,
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_signed"
    hidden = httpx.get(f"{gateway.url}/v1/reviews/{elsewhere.study}/{elsewhere.series}/{elsewhere.sop}", cookies=cookie)
    assert hidden.status_code == 404 and "among the studies this reviewer may see" in hidden.json()["error"]["message"]
    assert "signed by Wei Chen (dr.chen) at" in again.json()["error"]["message"]
    metrics = httpx.get(f"{gateway.url}/metrics", cookies=cookie)
    assert metrics.status_code == 403  # a radiologist is no operator


def test_without_the_review_permission_every_review_route_is_403_and_a_forged_login_401(desk):
    gateway, _, _, _, provider, results, _ = desk
    ref = results[0]
    path = f"{gateway.url}/v1/reviews/{ref.study}/{ref.series}/{ref.sop}"
    analyst = bearer(token_of(provider, "batch-job"))  # analyze only
    answers = [httpx.get(f"{gateway.url}/v1/reviews", headers=analyst), httpx.get(path, headers=analyst)]
    answers += [httpx.get(path + "/image", headers=analyst), httpx.post(path, json={}, headers=analyst)]
    assert [a.status_code for a in answers] == [403] * 4
    assert all("no permission for 'review'" in a.json()["error"]["message"] for a in answers)
    wrong = httpx.delete(path, headers=analyst)  # the 405 names every method the path has (RFC 9110), not the first
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, POST"
    forged = bearer(token_of(provider, "batch-job")[:-8] + "AAAAAAAA")
    assert httpx.get(f"{gateway.url}/v1/reviews", headers=forged).status_code == 401
    assert httpx.get(f"{gateway.url}/v1/reviews").status_code == 401
