"""The narrative `content`, rendered from a validated structured report in the request's language.

Each finding's line starts with the gateway's own statement (rules.yaml's
abstention wording), so the narrative never says more than the state allows;
the report model's evidence sentence follows it.
"""

from __future__ import annotations

from gateway.clinical.abstention import FindingAssessment
from gateway.clinical.content import ClinicalContent, Language
from gateway.clinical.structured import StructuredReport


def render(
    content: ClinicalContent,
    report: StructuredReport,
    assessed: list[FindingAssessment],
    language: Language,
    disclaimer: str,
    *,
    caution: str | None = None,
) -> str:
    """`caution`, when given, heads the text: a report kept although it contradicts stage one says so first."""
    headings = content.rules.narrative
    statements = {a.finding: a.statement for a in assessed}
    lines = [f"## {headings.title.get(language)}", ""]
    lines += [f"**{caution}**", ""] if caution else []
    lines += [f"**{headings.findings.get(language)}**"]
    lines += [f"- {statements[f.finding]}: {f.evidence}" for f in report.findings]
    lines += [f"- {a.statement}: {a.reason}" for a in assessed if a.state == "unavailable"]
    lines += ["", f"**{headings.impression.get(language)}**", report.impression]
    if report.recommendations:
        lines += ["", f"**{headings.recommendations.get(language)}**"]
        lines += [f"- {item}" for item in report.recommendations]
    lines += ["", f"*{disclaimer}*"]
    return "\n".join(lines)
