"""Clinical content as reviewed data: rule tables, fracture-text cues, prompts, disclaimers.

`load()` reads rules.yaml and prompts/ once, in the gateway's lifespan, and
validates them against the typed model below: a typo in a key, a table
without its catch-all rule, a language missing from a text or a prompt that
asks for a value the code does not fill stops the start with a message that
names the key, instead of surfacing as a 500 on the first request.
"""

from __future__ import annotations

import hashlib
import string
from pathlib import Path
from typing import Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.contract.validation import describe

Language = Literal["zh", "en"]
LANGUAGES: tuple[Language, ...] = ("zh", "en")
CLINICAL_DIR = Path(__file__).parent  # rules.yaml and prompts/ beside the code

# The values the pipeline puts into prompts/report.<language>.md; a prompt may use any of them.
REPORT_PROMPT_FIELDS = frozenset(
    {
        "predicted_class",
        "confidence",
        "p_normal",
        "p_pneumonia",
        "risk_level",
        "fracture_text",
        "indication",
        "date",
        "assessments",
    }
)


class ClinicalContentError(ValueError):
    """rules.yaml or a prompt is invalid; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Localized(_Strict):
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)

    def get(self, language: Language) -> str:
        return self.zh if language == "zh" else self.en


class When(_Strict):
    """A rule's condition; an absent key matches anything, so `when: {}` always matches."""

    predicted_class: str | None = Field(default=None, alias="class")
    min_confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    fracture_suspected: bool | None = None

    @property
    def is_catch_all(self) -> bool:
        return self.predicted_class is None and self.min_confidence == 0.0 and self.fracture_suspected is None


class CodedRule(_Strict):
    when: When
    code: str = Field(min_length=1)
    text: Localized


class AdviceRule(_Strict):
    when: When
    items: list[Localized] = Field(min_length=1)


class Recommendations(_Strict):
    always: list[Localized]
    by_classification: list[AdviceRule]
    by_fracture: list[AdviceRule]


FindingName = Literal["pneumonia", "fracture"]


class Cues(_Strict):
    """What gateway/clinical/negation.py reads a text with: a term, and the cues that negate or hedge it."""

    mention: list[str] = Field(min_length=1)
    negation: list[str] = Field(min_length=1)  # before the term in its clause: "no fracture"
    post_negation: list[str] = Field(default_factory=list)  # after it: "pneumonia is absent"
    uncertainty: list[str] = Field(min_length=1)  # anywhere in the clause: "possible fracture"


class ReportCues(_Strict):
    """The cues the report's free text is read with (gateway/clinical/consistency.py): one set, a term list a finding."""

    mention: dict[FindingName, list[str]]
    negation: list[str] = Field(min_length=1)
    post_negation: list[str] = Field(min_length=1)
    uncertainty: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _every_finding_has_terms(self) -> ReportCues:
        missing = set(get_args(FindingName)) - {name for name, terms in self.mention.items() if terms}
        if missing:
            raise ValueError(f"mention: no terms for {sorted(missing)}")
        return self

    def of(self, finding: FindingName) -> Cues:
        fields = self.model_dump(exclude={"mention"})
        return Cues(mention=self.mention[finding], **fields)


class Placeholders(_Strict):
    indication_missing: Localized
    fracture_unavailable: Localized


# The values a reason in `abstention:` may use; the figures come from the model cards.
ABSTENTION_FIELDS = frozenset({"confidence", "min_confidence", "accuracy", "recall", "precision"})


class Wording(_Strict):
    statement: Localized
    reason: Localized

    @model_validator(mode="after")
    def _known_fields(self) -> Wording:
        for text in (self.reason.zh, self.reason.en, self.statement.zh, self.statement.en):
            unknown = _prompt_fields(text) - ABSTENTION_FIELDS
            if unknown:
                raise ValueError(f"unknown fields {sorted(unknown)} in {text!r}; known: {sorted(ABSTENTION_FIELDS)}")
        return self


class PneumoniaWording(_Strict):
    present: Wording
    absent: Wording
    uncertain: Wording


class FractureWording(_Strict):
    present: Wording
    not_detected: Wording
    unavailable: Wording


class Abstention(_Strict):
    pneumonia_class: str = Field(min_length=1)
    min_confidence: float = Field(ge=0.5, le=1.0)  # a two-class confidence is never below 0.5
    pneumonia: PneumoniaWording
    fracture: FractureWording


class NarrativeHeadings(_Strict):
    title: Localized
    findings: Localized
    impression: Localized
    recommendations: Localized


class Rules(_Strict):
    risk_level: list[CodedRule] = Field(min_length=1)
    confidence_interpretation: list[CodedRule] = Field(min_length=1)
    recommendations: Recommendations
    fracture_terms: Cues
    report_consistency: ReportCues
    disclaimer: Localized
    stand_in_notice: Localized
    report_unavailable: Localized
    report_inconsistent: Localized
    placeholders: Placeholders
    abstention: Abstention
    narrative: NarrativeHeadings

    @model_validator(mode="after")
    def _tables_end_with_a_catch_all(self) -> Rules:
        # First-match tables must always match something: the last rule has an empty `when`.
        for name in ("risk_level", "confidence_interpretation"):
            table: list[CodedRule] = getattr(self, name)
            if not table[-1].when.is_catch_all:
                raise ValueError(f"{name}: the last rule must have an empty `when: {{}}` so that every result matches")
        return self

    def classes_named(self) -> set[str]:
        whens = [rule.when for rule in (*self.risk_level, *self.confidence_interpretation)]
        whens += [rule.when for rule in (*self.recommendations.by_classification, *self.recommendations.by_fracture)]
        return {when.predicted_class for when in whens if when.predicted_class is not None} | {self.abstention.pneumonia_class}


class ClinicalContent(BaseModel):
    model_config = ConfigDict(frozen=True)

    rules: Rules
    report_prompts: dict[Language, str]
    fracture_prompt: str
    rules_sha256: str  # of rules.yaml as read: the rules' version in every answer's provenance
    report_prompt_sha256: dict[Language, str]

    def text(
        self, key: Literal["disclaimer", "stand_in_notice", "report_unavailable", "report_inconsistent"], language: Language
    ) -> str:
        localized: Localized = getattr(self.rules, key)
        return localized.get(language)

    def disclaimer(self, language: Language, *, stand_in: bool) -> str:
        """The notice every result carries; with the stand-in notice while any model is not cleared for clinical use."""
        notice = self.text("disclaimer", language)
        return f"{notice} {self.text('stand_in_notice', language)}" if stand_in else notice

    def placeholder(self, key: Literal["indication_missing", "fracture_unavailable"], language: Language) -> str:
        localized: Localized = getattr(self.rules.placeholders, key)
        return localized.get(language)

    def check_classes(self, classes: tuple[str, ...]) -> None:
        """Every class a rule names must be one the classifier can answer, or the rule could never fire."""
        unknown = self.rules.classes_named() - set(classes)
        if unknown:
            raise ClinicalContentError(
                f"rules.yaml names classes {sorted(unknown)} that the classifier does not have ({', '.join(classes)})"
            )


def _prompt_fields(prompt: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(prompt) if field}


def _read_report_prompt(folder: Path, language: Language) -> str:
    path = folder / "prompts" / f"report.{language}.md"
    prompt = path.read_text(encoding="utf-8")
    unknown = _prompt_fields(prompt) - REPORT_PROMPT_FIELDS
    if unknown:
        raise ClinicalContentError(f"{path}: unknown placeholders {sorted(unknown)}; known: {sorted(REPORT_PROMPT_FIELDS)}")
    return prompt


def _read_rules(path: Path) -> Rules:
    try:
        return Rules.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except ValidationError as error:
        problem = describe(error, "(top level)")
        raise ClinicalContentError(f"{path}: {problem} ({error.error_count()} problem(s) in all)") from None
    except yaml.YAMLError as error:
        raise ClinicalContentError(f"{path}: not valid YAML: {error}") from None


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def load(folder: Path = CLINICAL_DIR) -> ClinicalContent:
    prompts = {language: _read_report_prompt(folder, language) for language in LANGUAGES}
    return ClinicalContent(
        rules=_read_rules(folder / "rules.yaml"),
        report_prompts=prompts,
        fracture_prompt=(folder / "prompts" / "fracture.en.md").read_text(encoding="utf-8").strip(),
        rules_sha256=_sha256((folder / "rules.yaml").read_text(encoding="utf-8")),
        report_prompt_sha256={language: _sha256(prompt) for language, prompt in prompts.items()},
    )
