"""The bridge's review API (services/bridge/pacs/review_api.py) as a real process against a real Orthanc, with
the RIS a real MLLP peer (hl7apy): the token guards every route, a signature is stored in the PACS, and its
ORU^R01 (F, or C when the radiologist changed the result) and FHIR DiagnosticReport (final, or corrected) go out
through the outbox."""

from __future__ import annotations

import base64
import io
import json
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from PIL import Image
from pydicom.uid import generate_uid

from services.bridge.pacs import verified
from services.bridge.pacs.dicomweb import InstanceRef, Pacs
from services.bridge.pacs.settings import PacsSettings
from services.contract.review import SITES_HEADER
from tests.bridge.pacs.helpers import NORMAL, PNEUMONIA
from tests.bridge.pacs.test_review import _result
from tests.http_peers import reply, serve
from tests.pacs_server import PASSWORD, USER
from tests.waiting import wait_until

TOKEN = "review-token-" + "0123456789abcdef" * 2
DR_CHEN = {"login": "dr.chen", "name": "Chen^Wei", "organization": "Radiology, General Hospital"}
ACCEPT_ALL = [{"finding": "pneumonia", "verdict": "accepted"}, {"finding": "fracture", "verdict": "accepted"}]


class FhirPeer:
    """The FHIR R4 REST API's conditional update of DiagnosticReport (`PUT [base]/DiagnosticReport?identifier=`):
    each body validated with fhir.resources, created (201) or updated (200) by its identifier, an invalid one
    answered 422 with an OperationOutcome. No FHIR server runs on these machines (HAPI FHIR is Java, not Debian's)."""

    def __init__(self) -> None:
        self.reports: dict[str, dict] = {}
        self.puts = 0
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                url = urlsplit(self.path)
                (key,) = parse_qs(url.query)["identifier"]
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                try:
                    DiagnosticReport.model_validate(body)
                    ok = url.path == "/fhir/DiagnosticReport" and self.headers["Content-Type"] == "application/fhir+json"
                except ValueError as error:
                    ok, body = False, {"resourceType": "OperationOutcome", "issue": [{"diagnostics": str(error)[:200]}]}
                peer.puts += 1
                status = (200 if key in peer.reports else 201) if ok else 422
                if ok:
                    peer.reports[key] = body
                reply(self, status, json.dumps(body).encode(), "application/fhir+json")

            def log_message(self, *args: object) -> None:
                pass

        self.server, root = serve(Handler)
        self.url = f"{root}/fhir"


@pytest.fixture
def fhir_server():
    peer = FhirPeer()
    yield peer
    peer.server.shutdown()


def _signed_report(fhir_server: FhirPeer, verified_sop: str) -> dict:
    wait_until(lambda: f"urn:dicom:uid|urn:oid:{verified_sop}" in fhir_server.reports, 60, "the DiagnosticReport")
    return fhir_server.reports[f"urn:dicom:uid|urn:oid:{verified_sop}"]


@pytest.fixture
def reviewing(orthanc, start_bridge, ris, fhir_server):
    pacs = Pacs(PacsSettings(url=orthanc.url, username=USER, password=PASSWORD))
    bridge = start_bridge(
        CXR_PACS_URL=orthanc.url,
        CXR_PACS_USERNAME=USER,
        CXR_PACS_PASSWORD=PASSWORD,
        CXR_BRIDGE_REVIEW_TOKEN=TOKEN,
        CXR_BRIDGE_RIS_HOST="127.0.0.1",
        CXR_BRIDGE_RIS_PORT=str(ris.port),
        CXR_BRIDGE_FHIR_URL=fhir_server.url,
    )
    http = httpx.Client(base_url=bridge.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    yield pacs, bridge, http
    http.close()


def _path(ref: InstanceRef) -> str:
    return f"/reviews/{ref.study}/{ref.series}/{ref.sop}"


def _order(message) -> tuple[object, list[str]]:
    """The ORU's OBR (hl7apy, as the RIS parsed it) and the result status of each of its OBX."""
    order = message.oru_r01_patient_result.oru_r01_order_observation
    return order.obr, [observation.obx.obx_11.value for observation in order.oru_r01_observation]


def _sign(http: httpx.Client, ref: InstanceRef, verdicts: list[dict], report: str, edited: bool) -> httpx.Response:
    return http.post(_path(ref), json={"verdicts": verdicts, "report": report, "report_edited": edited, "reviewer": DR_CHEN})


def test_every_route_needs_the_review_token(reviewing):
    pacs, bridge, _ = reviewing
    ref = _result(pacs, NORMAL, str(generate_uid()))
    for token in (None, "wrong-" + TOKEN, TOKEN + "x"):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        with httpx.Client(base_url=bridge.url, headers=headers, timeout=30) as stranger:
            answers = [stranger.get("/reviews"), stranger.get(_path(ref)), stranger.get(_path(ref) + "/image")]
            answers.append(stranger.post(_path(ref), json={}))
        assert [a.status_code for a in answers] == [401] * 4, token
    assert bridge.lines("signed") == []


def test_a_result_is_shown_as_the_pacs_holds_it_then_signed_and_sent_to_the_ris_as_final(reviewing, ris, fhir_server):
    pacs, bridge, http = reviewing
    ref = _result(pacs, PNEUMONIA, str(generate_uid()))
    assert ref.sop in [item["sop"] for item in http.get("/reviews").json()["results"]]
    shown = http.get(_path(ref)).json()
    assert {f["finding"]: f["call"] for f in shown["findings"]} == {"pneumonia": "present", "fracture": "absent"}
    assert shown["probability"] == pytest.approx(0.9) and shown["fracture_text"] == "No fracture is seen."
    assert shown["report"] == "Findings suggest pneumonia." and shown["signed"] is None
    image = http.get(_path(ref) + "/image")
    assert image.headers["content-type"] == "image/png" and Image.open(io.BytesIO(image.content)).mode in ("L", "RGB")

    signed = _sign(http, ref, ACCEPT_ALL, "Findings suggest pneumonia.", False)
    assert signed.status_code == 201, signed.text
    out = signed.json()
    assert (out["login"], out["changed"], [f["verdict"] for f in out["findings"]]) == ("dr.chen", False, ["accepted"] * 2)
    assert out["verified_sop"] == verified.verified_instance_uid(ref.sop)
    assert ref.sop not in [item["sop"] for item in http.get("/reviews").json()["results"]]
    assert http.get(_path(ref)).json()["signed"]["login"] == "dr.chen"

    wait_until(lambda: len(ris.received) == 1, 60, "the signed result's ORU at the RIS")
    obr, statuses = _order(ris.received[0].message)
    assert obr.obr_25.value == "F" and set(statuses) == {"F"}
    assert obr.obr_32.value.startswith("dr.chen&")
    text = ris.received[0].text
    assert "Findings suggest pneumonia." in text and ref.study in text

    report = _signed_report(fhir_server, out["verified_sop"])
    assert report["status"] == "final" and report["resultsInterpreter"][0]["identifier"]["value"] == "dr.chen"
    assert report["imagingStudy"][0]["identifier"]["value"] == f"urn:oid:{ref.study}"
    assert base64.b64decode(report["presentedForm"][0]["data"]).decode() == "Findings suggest pneumonia."
    states = {o["id"]: (o["valueCodeableConcept"]["coding"][0]["code"], o["status"]) for o in report["contained"]}
    assert states == {"pneumonia": ("52101004", "final"), "fracture": ("2667000", "final")}  # present, absent

    again = _sign(http, ref, ACCEPT_ALL, "Findings suggest pneumonia.", False)
    assert again.status_code == 409 and "signed by Chen^Wei (dr.chen) at" in again.json()["detail"]
    (line,) = bridge.lines("signed")
    assert line["verdicts"] == {"pneumonia": "accepted", "fracture": "accepted"} and "Chen" not in str(line)


def test_a_changed_result_goes_to_the_ris_as_corrected_and_a_review_that_does_not_fit_is_refused(reviewing, ris, fhir_server):
    pacs, _, http = reviewing
    ref = _result(pacs, PNEUMONIA, str(generate_uid()))
    missing = _sign(http, ref, [{"finding": "pneumonia", "verdict": "accepted"}], "x", False)
    assert missing.status_code == 422 and "the review gives verdicts for ['pneumonia']" in missing.json()["detail"]
    stateless = [{"finding": "pneumonia", "verdict": "modified"}, {"finding": "fracture", "verdict": "accepted"}]
    unfit = _sign(http, ref, stateless, "x", False)
    assert unfit.status_code == 422 and "pneumonia: a modified finding needs the corrected state" in unfit.json()["detail"]
    assert http.get("/reviews/1.2.x/3/4").status_code == 422  # not a UID: never sent to the PACS
    verdicts = [
        {"finding": "pneumonia", "verdict": "modified", "state": "uncertain"},
        {"finding": "fracture", "verdict": "rejected"},
    ]
    signed = _sign(http, ref, verdicts, "Possible pneumonia; rib fracture.", True)
    assert signed.status_code == 201 and signed.json()["changed"] is True
    wait_until(lambda: len(ris.received) == 1, 60, "the corrected result's ORU at the RIS")
    obr, statuses = _order(ris.received[0].message)
    assert obr.obr_25.value == "C" and set(statuses) == {"C"} and "Possible pneumonia; rib fracture." in ris.received[0].text
    report = _signed_report(fhir_server, signed.json()["verified_sop"])
    assert report["status"] == "corrected" and fhir_server.puts == 1  # the analysis's own result never goes there
    states = {o["id"]: o["valueCodeableConcept"]["coding"][0]["code"] for o in report["contained"]}
    assert states == {"pneumonia": "82334004", "fracture": "52101004"}  # uncertain; present (the AI's "absent" rejected)
    assert {o["id"]: o["note"][0]["text"].rsplit(": ", 1)[1] for o in report["contained"]} == {
        "pneumonia": "modified",
        "fracture": "rejected",
    }


def test_a_study_level_restriction_shows_and_signs_only_the_reviewers_sites(reviewing):
    pacs, _, http = reviewing
    north = _result(pacs, PNEUMONIA, str(generate_uid()), institution="North Campus")
    south = _result(pacs, NORMAL, str(generate_uid()), institution="South Campus")
    only_north = {SITES_HEADER: json.dumps(["North Campus"])}
    listed = [item["sop"] for item in http.get("/reviews", headers=only_north).json()["results"]]
    assert north.sop in listed and south.sop not in listed
    unrestricted = [item["sop"] for item in http.get("/reviews").json()["results"]]
    assert {north.sop, south.sop} <= set(unrestricted)
    hidden = [http.get(_path(south), headers=only_north), http.get(_path(south) + "/image", headers=only_north)]
    hidden.append(
        http.post(
            _path(south),
            headers=only_north,
            json={"verdicts": ACCEPT_ALL, "report": "x", "report_edited": False, "reviewer": DR_CHEN},
        )
    )
    assert [answer.status_code for answer in hidden] == [404] * 3
    assert all("among the studies this reviewer may see" in answer.json()["detail"] for answer in hidden)
    assert http.get(_path(north), headers=only_north).json()["signed"] is None
    assert http.get(_path(south), headers={SITES_HEADER: "[]"}).status_code == 404  # no site: nothing
    assert http.get("/reviews", headers={SITES_HEADER: "North Campus"}).status_code == 400  # not a JSON array
