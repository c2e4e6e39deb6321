"""The report's free text read back against stage one: a report never states what stage one does not allow.

The schema (gateway/clinical/structured.py) fixes each finding's status, so a contradiction can only live in
the free text: the evidence sentences, the impression and the recommendations. Each is read with the
negation-aware reader ChexFract's text gets (gateway/clinical/negation.py, rules.yaml's
`report_consistency` cues); every clause that names a finding states it present, absent or uncertain, and
a statement outside what stage one's state allows (`ALLOWED`) is a `Contradiction`. Every finding is
checked, those the schema leaves out (`unavailable`) too: a report may not claim a finding no model gave.

What happens to a report with one is the pipeline's policy (GATEWAY_REPORT_CONSISTENCY): withheld, as an
invalid report is (fail closed; the default), or kept and marked with the contradictions named.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.clinical import negation
from gateway.clinical.abstention import FindingAssessment, FindingState
from gateway.clinical.content import FindingName, ReportCues
from gateway.clinical.structured import StructuredReport

# What the report's text may state of a finding, by stage one's state. A finding stage one decided may also
# be hedged ("possible pneumonia" of a pneumonia classified present); an undecided one only hedged; one no
# model gave, never stated. A fracture ChexFract did not describe may be restated in its own words ("no
# fracture is seen": what it wrote) but never asserted: the narrative heads that line with the gateway's
# "not detected (limited sensitivity)", and the schema's status for it is `uncertain`, never `absent`.
ALLOWED: dict[FindingState, frozenset[negation.Stated]] = {
    "present": frozenset({"present", "uncertain"}),
    "absent": frozenset({"absent", "uncertain"}),
    "uncertain": frozenset({"uncertain"}),
    "not_detected": frozenset({"absent", "uncertain"}),
    "unavailable": frozenset({"uncertain"}),
}


# GATEWAY_REPORT_CONSISTENCY: what the pipeline does with a report that contradicts stage one.
ConsistencyPolicy = Literal["withhold", "mark"]


class Contradiction(BaseModel):
    """Where the report states a finding otherwise than stage one: named, never quoted (the text is the report's).

    The answer's `cxr.report_contradictions` as it is (gateway/protocol.py)."""

    model_config = ConfigDict(frozen=True)

    finding: FindingName
    stage_one: FindingState = Field(description="the finding's state from stage one (cxr.assessments)")
    stated: negation.Stated = Field(description="what the report's text states of it")
    part: str = Field(description='where: "impression", "recommendation 2", "fracture evidence"')

    def describe(self) -> str:
        return f"the {self.part} states {self.finding} {self.stated}; stage one has it {self.stage_one.replace('_', ' ')}"


def _parts(report: StructuredReport) -> list[tuple[str, str]]:
    parts = [(f"{f.finding} evidence", f.evidence) for f in report.findings]
    parts.append(("impression", report.impression))
    parts += [(f"recommendation {i}", text) for i, text in enumerate(report.recommendations, start=1)]
    return parts


def contradictions(report: StructuredReport, assessed: list[FindingAssessment], cues: ReportCues) -> list[Contradiction]:
    """Every part of the report that states a finding otherwise than stage one allows; empty when it agrees."""
    found = []
    for assessment in assessed:
        allowed, terms = ALLOWED[assessment.state], cues.of(assessment.finding)
        for part, text in _parts(report):
            stated = {m.stated for m in negation.mentions(text, terms)} - allowed
            found += [
                Contradiction(finding=assessment.finding, stage_one=assessment.state, stated=s, part=part) for s in sorted(stated)
            ]
    return found
