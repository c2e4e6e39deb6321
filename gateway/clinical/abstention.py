"""Abstention and known limits: the state each finding may honestly claim, and the reason, as data.

The wording is rules.yaml's (`abstention:`); the figures in it are the model
cards' published performance, never the model's own words. Two rules bind:
a classification under the configured confidence is `uncertain`, and a
fracture the fracture model does not describe is `not_detected` (its recall
is limited), never "absent".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.clinical.content import ClinicalContent, FindingName, Language, Wording

FindingState = Literal["present", "absent", "uncertain", "not_detected", "unavailable"]
NOT_PUBLISHED = {"zh": "未公布", "en": "not published"}


@dataclass(frozen=True)
class PublishedFigures:
    """From the model cards; None where a card publishes no such figure."""

    classifier_accuracy: float | None
    fracture_recall: float | None
    fracture_precision: float | None


class FindingAssessment(BaseModel):
    """What a finding may honestly claim (rules.yaml `abstention:`), and why: built here, and the answer's
    `cxr.assessments` as it is (gateway/protocol.py)."""

    model_config = ConfigDict(frozen=True)

    finding: FindingName
    state: FindingState = Field(
        description="present | absent | uncertain; for the fracture model also not_detected (limited sensitivity: "
        "not evidence of no fracture) and unavailable (the stage failed)"
    )
    statement: str
    reason: str
    probability: float | None = Field(description="the classifier's probability of pneumonia; None for fractures")


def _figure(value: float | None, language: Language) -> str:
    return f"{value:.3f}" if value is not None else NOT_PUBLISHED[language]


def _words(wording: Wording, language: Language, values: dict[str, str]) -> tuple[str, str]:
    return wording.statement.get(language).format(**values), wording.reason.get(language).format(**values)


def _values(content: ClinicalContent, figures: PublishedFigures, confidence: float, language: Language) -> dict[str, str]:
    return {
        "confidence": f"{confidence:.1%}",
        "min_confidence": f"{content.rules.abstention.min_confidence:.0%}",
        "accuracy": _figure(figures.classifier_accuracy, language),
        "recall": _figure(figures.fracture_recall, language),
        "precision": _figure(figures.fracture_precision, language),
    }


def pneumonia(
    content: ClinicalContent,
    figures: PublishedFigures,
    predicted_class: str,
    confidence: float,
    probabilities: dict[str, float],
    language: Language,
) -> FindingAssessment:
    rules = content.rules.abstention
    state: FindingState
    if confidence < rules.min_confidence:
        state = "uncertain"
    else:
        state = "present" if predicted_class == rules.pneumonia_class else "absent"
    statement, reason = _words(getattr(rules.pneumonia, state), language, _values(content, figures, confidence, language))
    probability = probabilities.get(rules.pneumonia_class)
    return FindingAssessment(finding="pneumonia", state=state, statement=statement, reason=reason, probability=probability)


def fracture(
    content: ClinicalContent, figures: PublishedFigures, suspected: bool | None, confidence: float, language: Language
) -> FindingAssessment:
    """`suspected` is None when the fracture model did not answer."""
    state: FindingState = "unavailable" if suspected is None else "present" if suspected else "not_detected"
    wording = getattr(content.rules.abstention.fracture, state)
    statement, reason = _words(wording, language, _values(content, figures, confidence, language))
    return FindingAssessment(finding="fracture", state=state, statement=statement, reason=reason, probability=None)
