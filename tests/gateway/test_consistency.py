"""The consistency guard on the real stack: the stand-in report model (SmolLM2-135M) often writes just
"fracture" as the impression of an X-ray its fracture model described no fracture on, the issue's case.

The same X-rays go to a gateway under each policy: the session's (the cpu profile marks, deploy/models.yaml)
and one started to withhold. Whatever the model writes, each answer must be what its policy says, and over
these X-rays the guard must have found the case at least once under each.
"""

from __future__ import annotations

import httpx

from gateway.clinical.content import load
from tests.conftest import SAMPLES, gateway_url

XRAYS = sorted(SAMPLES.glob("NORMAL2-*.jpeg"))[:4]
CAUTION = load().text("report_inconsistent", "en")


def _analyze(url: str, xray) -> dict:
    files = {"file": (xray.name, xray.read_bytes(), "image/jpeg")}
    response = httpx.post(f"{url}/v1/analyze", files=files, data={"language": "en"}, timeout=600)
    assert response.status_code == 200, response.text
    return response.json()


def _check_withheld(answer: dict) -> None:
    cxr = answer["cxr"]
    assert cxr["status"] == "partial" and cxr["structured_report"] is None and not cxr["report_available"]
    [warning] = [w for w in cxr["warnings"] if w["stage"] == "report"]
    assert "contradicts stage one, withheld" in warning["message"]
    assert all(c["part"] in warning["message"] for c in cxr["report_contradictions"])
    assert answer["report"] == load().text("report_unavailable", "en")


def _check_marked(answer: dict) -> None:
    cxr = answer["cxr"]
    assert cxr["status"] == "complete" and cxr["structured_report"] is not None
    assert answer["report"].splitlines()[2].startswith(f"**{CAUTION} ")
    assert any("contradicts stage one" in w["message"] for w in cxr["warnings"])


def test_each_policy_on_the_real_report_model(stack, start_gateway):
    withholding = start_gateway(GATEWAY_REPORT_CONSISTENCY="withhold")
    found = {"withhold": 0, "mark": 0}
    for xray in XRAYS:
        for policy, url in (("withhold", withholding.url), ("mark", gateway_url(stack))):
            answer = _analyze(url, xray)
            contradictions = answer["cxr"]["report_contradictions"]
            if not contradictions:
                assert answer["cxr"]["status"] == "complete" and "contradicts" not in answer["report"]
                continue
            found[policy] += 1
            states = {a["finding"]: a["state"] for a in answer["cxr"]["assessments"]}
            assert all(states[c["finding"]] == c["stage_one"] for c in contradictions)
            if policy == "withhold":
                _check_withheld(answer)
            else:
                _check_marked(answer)
    assert found["withhold"] >= 1 and found["mark"] >= 1, found
