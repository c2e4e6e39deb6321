"""The seed design's rule tables (risk level, confidence wording, recommendations), evaluated from data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.clinical import ClinicalContent, Language


@dataclass(frozen=True)
class Facts:
    predicted_class: str
    confidence: float
    fracture_suspected: bool | None  # None: the fracture model did not answer


@dataclass(frozen=True)
class Coded:
    code: str
    text: str


@dataclass(frozen=True)
class Assessment:
    risk_level: Coded
    confidence_interpretation: Coded
    recommendations: list[str]


def matches(when: dict[str, Any], facts: Facts) -> bool:
    return (
        when.get("class", facts.predicted_class) == facts.predicted_class
        and facts.confidence >= when.get("min_confidence", 0.0)
        and when.get("fracture_suspected", facts.fracture_suspected) == facts.fracture_suspected
    )


def first_match(table: list[dict[str, Any]], facts: Facts) -> dict[str, Any]:
    return next(rule for rule in table if matches(rule["when"], facts))  # each table ends with `when: {}`


def assess(content: ClinicalContent, facts: Facts, language: Language) -> Assessment:
    rules = content.rules
    risk = first_match(rules["risk_level"], facts)
    confidence = first_match(rules["confidence_interpretation"], facts)
    advice = rules["recommendations"]
    items = list(advice["always"])
    items += next((rule["items"] for rule in advice["by_classification"] if matches(rule["when"], facts)), [])
    items += [item for rule in advice["by_fracture"] if matches(rule["when"], facts) for item in rule["items"]]
    return Assessment(
        risk_level=Coded(risk["code"], risk["text"][language]),
        confidence_interpretation=Coded(confidence["code"], confidence["text"][language]),
        recommendations=[item[language] for item in items],
    )
