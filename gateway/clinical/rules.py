"""The seed design's rule tables (risk level, confidence wording, recommendations), evaluated from data."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from gateway.clinical.content import ClinicalContent, CodedRule, Language, When


@dataclass(frozen=True)
class Facts:
    predicted_class: str
    confidence: float
    fracture_suspected: bool | None  # None: the fracture model did not answer


class CodedText(BaseModel):
    """A rule's verdict: its code (stable, for machines) and its wording in the answer's language.
    The same type is the answer's `cxr.risk_level` and `cxr.confidence_interpretation` (gateway/protocol.py)."""

    model_config = ConfigDict(frozen=True)

    code: str
    text: str


@dataclass(frozen=True)
class Assessment:
    risk_level: CodedText
    confidence_interpretation: CodedText
    recommendations: list[str]


def matches(when: When, facts: Facts) -> bool:
    return (
        when.predicted_class in (None, facts.predicted_class)
        and facts.confidence >= when.min_confidence
        and (when.fracture_suspected is None or when.fracture_suspected == facts.fracture_suspected)
    )


def first_match(table: list[CodedRule], facts: Facts) -> CodedRule:
    return next(rule for rule in table if matches(rule.when, facts))  # validated: each table ends with `when: {}`


def assess(content: ClinicalContent, facts: Facts, language: Language) -> Assessment:
    rules = content.rules
    risk = first_match(rules.risk_level, facts)
    confidence = first_match(rules.confidence_interpretation, facts)
    advice = rules.recommendations
    items = list(advice.always)
    items += next((rule.items for rule in advice.by_classification if matches(rule.when, facts)), [])
    items += [item for rule in advice.by_fracture if matches(rule.when, facts) for item in rule.items]
    return Assessment(
        risk_level=CodedText(code=risk.code, text=risk.text.get(language)),
        confidence_interpretation=CodedText(code=confidence.code, text=confidence.text.get(language)),
        recommendations=[item.get(language) for item in items],
    )
