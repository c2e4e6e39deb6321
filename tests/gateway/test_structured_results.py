"""Structured, honest results against the real stack: schema-locked report, abstention, FHIR, provenance, marking."""

from __future__ import annotations

import copy
import hashlib
import json

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle

from gateway import fhir
from gateway.backends.calls import Sampling
from gateway.clinical import abstention, structured
from gateway.clinical.content import CLINICAL_DIR, load
from gateway.clinical.structured import SCHEMA_SHA256
from gateway.pipeline.requests import ReportFacts, report_call
from gateway.protocol import CxrResult
from services.contract.classification import Classification
from tests.conftest import gateway_url
from tests.gateway.conftest import xray_message

PNEUMONIA = "person1946_bacteria_4874.jpeg"
NORMAL = "NORMAL2-IM-1430-0001.jpeg"
CLINICAL = load()
FIGURES = abstention.PublishedFigures(classifier_accuracy=0.861, fracture_recall=0.487, fracture_precision=0.75)


def analyze(stack, image: bytes, **form: str) -> httpx.Response:
    files = {"file": ("xray.jpeg", image, "image/jpeg")}
    return httpx.post(f"{gateway_url(stack)}/v1/analyze", files=files, data=form, timeout=300)


@pytest.fixture(scope="module")
def positive(stack, sample_images) -> dict:
    return analyze(stack, sample_images[PNEUMONIA]).json()


# --- the schema-locked report ------------------------------------------------------------------------------


def test_constrained_decoding_on_the_real_report_server_gives_the_schema_and_the_given_statuses(stack):
    """The report model, called directly with the pipeline's request: vLLM's structured output holds it to the schema."""
    assessed = [
        abstention.pneumonia(CLINICAL, FIGURES, "PNEUMONIA", 0.93, {"PNEUMONIA": 0.93, "NORMAL": 0.07}, "en"),
        abstention.fracture(CLINICAL, FIGURES, False, 0.93, "en"),
    ]
    facts = ReportFacts(
        language="en",
        classification=Classification(predicted_class="PNEUMONIA", confidence=0.93, probabilities={"PNEUMONIA": 0.93}),
        fracture_text="No fracture is seen.",
        risk_text="High risk",
        indication="fever",
        assessed=assessed,
    )
    call = report_call(stack.roles["report"].served_name, CLINICAL, facts, Sampling(max_tokens=400, temperature=0.0))
    answer = httpx.post(f"{stack.url('report')}/v1/chat/completions", json=call.body(), timeout=300).json()
    text = answer["choices"][0]["message"]["content"]
    report = structured.validate(text, [("pneumonia", "present"), ("fracture", "uncertain")])
    assert [f.status for f in report.findings] == ["present", "uncertain"]  # not_detected may never read "absent"
    # Without the schema the same model writes prose that is no structured report: the constraint does the work.
    free = httpx.post(
        f"{stack.url('report')}/v1/chat/completions", json={**call.body(), "response_format": None}, timeout=300
    ).json()["choices"][0]["message"]["content"]
    with pytest.raises(structured.ReportRejected):
        structured.validate(free, [("pneumonia", "present"), ("fracture", "uncertain")])


def test_the_answer_carries_the_validated_report_and_a_narrative_rendered_from_it(positive):
    cxr = positive["cxr"]
    assert cxr["status"] == "complete" and cxr["report_available"]
    report = structured.StructuredReport.model_validate(cxr["structured_report"])
    narrative = positive["report"]
    assert narrative.startswith("## Chest X-ray preliminary report (AI-generated)")
    assert report.impression in narrative
    for item in report.recommendations:
        assert f"- {item}" in narrative
    assert "Not detected by the fracture model (limited sensitivity)" in narrative
    assert cxr["disclaimer"] in narrative


def test_zh_narrative_uses_the_zh_headings(client, sample_images):
    answer = client.chat.completions.create(
        model="cxr-report", messages=xray_message(sample_images[NORMAL]), extra_body={"language": "zh"}
    )
    assert answer.choices[0].message.content.startswith("## 胸部X光初步报告（AI生成）")
    assert "骨折模型未检出骨折（敏感性有限）" in answer.choices[0].message.content


def test_output_cut_before_the_json_closes_fails_closed(client, sample_images):
    answer = client.chat.completions.create(model="cxr-report", messages=xray_message(sample_images[PNEUMONIA]), max_tokens=8)
    cxr = answer.model_extra["cxr"]
    assert cxr["status"] == "partial" and not cxr["report_available"] and cxr["structured_report"] is None
    [warning] = cxr["warnings"]
    assert warning["stage"] == "report" and "cut at its token budget" in warning["message"]
    assert answer.choices[0].message.content == CLINICAL.text("report_unavailable", "en")
    assert answer.choices[0].finish_reason == "length"


def test_text_that_is_not_the_schema_is_refused():
    with pytest.raises(structured.ReportRejected, match="findings"):
        structured.validate('{"impression": "x", "recommendations": []}', [("pneumonia", "present")])
    good = {"findings": [{"finding": "pneumonia", "status": "absent", "evidence": "e"}], "impression": "i", "recommendations": []}
    with pytest.raises(structured.ReportRejected, match="differ"):  # valid JSON, but not what stage one found
        structured.validate(json.dumps(good), [("pneumonia", "present")])


# --- abstention and known limits ------------------------------------------------------------------------------


def test_a_fracture_not_described_is_not_detected_with_the_cards_recall_never_absent(positive):
    fracture = next(a for a in positive["cxr"]["assessments"] if a["finding"] == "fracture")
    assert fracture["state"] == "not_detected"  # the stand-in describes no fracture
    assert fracture["statement"] == "Not detected by the fracture model (limited sensitivity)"
    assert "0.487" in fracture["reason"]  # from the model card, not from the model's words


def test_a_classification_under_the_configured_confidence_is_uncertain_with_the_reason():
    threshold = CLINICAL.rules.abstention.min_confidence
    low = abstention.pneumonia(CLINICAL, FIGURES, "PNEUMONIA", threshold - 0.01, {"PNEUMONIA": threshold - 0.01}, "en")
    high = abstention.pneumonia(CLINICAL, FIGURES, "NORMAL", threshold, {"PNEUMONIA": 1 - threshold}, "en")
    assert low.state == "uncertain" and "below the configured 70%" in low.reason
    assert high.state == "absent" and "0.861" in high.reason
    assert abstention.fracture(CLINICAL, FIGURES, None, 0.9, "en").state == "unavailable"


def test_the_real_positive_result_carries_state_probability_and_reason(positive):
    pneumonia = next(a for a in positive["cxr"]["assessments"] if a["finding"] == "pneumonia")
    classification = positive["cxr"]["classification"]
    assert pneumonia["state"] == "present" and classification["predicted_class"] == "PNEUMONIA"
    assert pneumonia["probability"] == pytest.approx(classification["probabilities"]["PNEUMONIA"])


# --- FHIR R4 --------------------------------------------------------------------------------------------------


def entries(bundle: dict, kind: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def check_bundle(bundle: dict, pneumonia_state: str) -> dict:
    Bundle.model_validate(bundle)  # fhir.resources validates every resource in it
    [report] = entries(bundle, "DiagnosticReport")
    assert report["status"] == "preliminary"
    assert report["category"][0]["coding"][0]["code"] == "LP29684-5"
    assert report["code"]["coding"][0]["system"] == "http://loinc.org"
    has_code = any(c["code"] == "233604007" for cc in report.get("conclusionCode", []) for c in cc["coding"])
    assert has_code == (pneumonia_state == "present")
    observations = entries(bundle, "Observation")
    assert len(observations) == 2 and len(report["result"]) == 2
    assert len(entries(bundle, "Device")) == 3
    [provenance] = entries(bundle, "Provenance")
    assert len(provenance["agent"]) == 3 and "AI model" in provenance["agent"][0]["who"]["display"]
    return report


def test_fhir_bundles_validate_for_positive_negative_uncertain_and_partial(stack, sample_images, client):
    refs = {"subject": "Patient/p-1", "encounter": "Encounter/e-1", "imaging_study": "ImagingStudy/s-1"}
    accept = {"accept": fhir.FHIR_MEDIA_TYPE}
    files = {"file": ("xray.jpeg", sample_images[PNEUMONIA], "image/jpeg")}
    response = httpx.post(f"{gateway_url(stack)}/v1/analyze", files=files, data=refs, headers=accept, timeout=300)
    assert response.headers["content-type"].startswith(fhir.FHIR_MEDIA_TYPE)
    report = check_bundle(response.json(), "present")
    assert report["subject"]["reference"] == "Patient/p-1" and report["imagingStudy"][0]["reference"] == "ImagingStudy/s-1"

    negative = client.chat.completions.create(
        model="cxr-report", messages=xray_message(sample_images[NORMAL]), extra_body={"fhir": {"subject": "Patient/p-2"}}
    )
    check_bundle(negative.model_extra["fhir"], "absent")

    partial = client.chat.completions.create(
        model="cxr-report", messages=xray_message(sample_images[NORMAL]), max_tokens=8, extra_body={"fhir": {}}
    )
    assert partial.model_extra["cxr"]["status"] == "partial"
    check_bundle(partial.model_extra["fhir"], "absent")

    # Uncertain: the real negative result with its pneumonia state as a low confidence would make it.
    result = CxrResult.model_validate(copy.deepcopy(negative.model_extra["cxr"]))
    result.assessments[0] = result.assessments[0].model_copy(update={"state": "uncertain"})
    uncertain = fhir.bundle(result, negative.choices[0].message.content, fhir.Subject())
    check_bundle(uncertain, "uncertain")
    observation = next(o for o in entries(uncertain, "Observation") if o["code"]["coding"][0]["code"] == "233604007")
    assert observation["valueCodeableConcept"]["coding"][0]["code"] == "82334004"


def test_a_malformed_fhir_reference_is_a_400(client, sample_images):
    with pytest.raises(Exception) as refused:
        client.chat.completions.create(
            model="cxr-report", messages=xray_message(sample_images[NORMAL]), extra_body={"fhir": {"subject": "Zhang Wei"}}
        )
    assert getattr(refused.value, "status_code", None) == 400 and "fhir.subject" in str(refused.value)


# --- provenance, marking, licences ------------------------------------------------------------------------------


def test_every_answer_is_marked_ai_generated_with_provenance(stack, sample_images):
    response = analyze(stack, sample_images[NORMAL])
    assert response.headers["ai-disclosure"].startswith("mode=ai-originated")
    provenance = response.json()["cxr"]["provenance"]
    assert provenance["ai_generated"] is True
    assert provenance["engines"]["report"].startswith("vllm 0.") and provenance["engines"]["fracture"].startswith("vllm 0.")
    assert provenance["engines"]["classifier"].startswith("onnxruntime 1.")
    assert provenance["schema_sha256"] == SCHEMA_SHA256
    assert provenance["rules_sha256"] == hashlib.sha256((CLINICAL_DIR / "rules.yaml").read_bytes()).hexdigest()
    assert provenance["prompt_sha256"] == CLINICAL.report_prompt_sha256["en"]
    assert {m["name"] for m in provenance["models"]} == {"report-llm", "chexfract", "pneumonia-classifier"}
    assert all(len(m["sha256"]) == 64 for m in provenance["models"])


def test_models_list_shows_each_licence(stack):
    models = httpx.get(f"{gateway_url(stack)}/v1/models", timeout=10).json()["data"]
    by_id = {m["id"]: m for m in models}
    assert by_id["chexfract"]["licence"].startswith("Apache-2.0") and by_id["chexfract"]["commercial_use"] is True
    assert by_id["pneumonia-classifier"]["commercial_use"] is False  # its package declares no licence
    assert by_id["cxr-report"]["commercial_use"] is False and "pneumonia-classifier" in by_id["cxr-report"]["licence"]
