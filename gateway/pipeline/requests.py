"""The chat calls the pipeline makes: ChexFract's question about the image, and the report prompt.

Tests and benchmarks that call a backend directly build their requests here
too, so they send exactly what the pipeline sends.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from gateway.backends.calls import ChatCall, Sampling
from gateway.clinical import structured
from gateway.clinical.abstention import FindingAssessment
from gateway.clinical.content import ClinicalContent, Language
from gateway.clinical.structured import REPORT_STATUS
from services.contract.classification import Classification
from services.contract.priority import Priority


def fracture_call(model: str, prompt: str, image_uri: str, sampling: Sampling, priority: Priority = Priority.ROUTINE) -> ChatCall:
    """What ChexFract gets: the image, then the fracture question from prompts/fracture.en.md."""
    content = [{"type": "image_url", "image_url": {"url": image_uri}}, {"type": "text", "text": prompt}]
    return ChatCall(model, [{"role": "user", "content": content}], sampling, priority=priority)


@dataclass(frozen=True)
class ReportFacts:
    """What the report prompt is built from: stage one's results, with the rules applied."""

    language: Language
    classification: Classification
    fracture_text: str | None
    risk_text: str
    indication: str
    assessed: list[FindingAssessment]
    priority: Priority = Priority.ROUTINE


def report_call(model: str, clinical: ClinicalContent, facts: ReportFacts, sampling: Sampling) -> ChatCall:
    """What the report model gets: the findings put into prompts/report.<language>.md, and the schema to answer in."""
    language = facts.language
    probabilities = facts.classification.probabilities
    prompt = clinical.report_prompts[language].format(
        predicted_class=facts.classification.predicted_class,
        confidence=facts.classification.confidence,
        p_normal=probabilities.get("NORMAL", 0.0),
        p_pneumonia=probabilities.get("PNEUMONIA", 0.0),
        risk_level=facts.risk_text,
        fracture_text=facts.fracture_text
        if facts.fracture_text is not None
        else clinical.placeholder("fracture_unavailable", language),
        indication=facts.indication or clinical.placeholder("indication_missing", language),
        date=dt.date.today().isoformat(),
        assessments="\n".join(
            f"- {a.finding}: {REPORT_STATUS[a.state]} ({a.reason})" for a in facts.assessed if a.state in REPORT_STATUS
        ),
    )
    schema = structured.response_format(structured.expected(facts.assessed))
    return ChatCall(model, [{"role": "user", "content": prompt}], sampling, schema, facts.priority)
