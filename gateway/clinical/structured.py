"""The schema-locked report: what the report model must generate, and the check that it did.

The report model never sees the image: it may only restate the findings the
AI models produced. So each request's schema (sent as vLLM's structured-output
`response_format: json_schema`) lists exactly the findings stage one has, in
order, each with the one status stage one allows; the model writes the
evidence sentence, the impression and the recommendations. What comes back is
validated against the same schema here; output that does not validate (cut at
max_tokens, or a server that ignored the schema) is refused, never presented
as structured: fail closed.

Lengths are bounded so that a looping model still closes its JSON within the
report's token budget.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.clinical.abstention import FindingAssessment, FindingState
from gateway.clinical.content import FindingName
from services.contract.validation import describe

ReportStatus = Literal["present", "absent", "uncertain"]  # narrowed per request to the one stage one allows


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReportFinding(_Strict):
    finding: FindingName
    status: ReportStatus
    evidence: str = Field(min_length=1, max_length=100, description="one sentence supporting the status")


class StructuredReport(_Strict):
    findings: list[ReportFinding] = Field(min_length=1, max_length=2)
    impression: str = Field(min_length=1, max_length=160)
    recommendations: list[Annotated[str, Field(min_length=1, max_length=80)]] = Field(max_length=3)


# The status the report may write for each state of stage one. `not_detected` becomes `uncertain`:
# a fracture the model did not describe is not an absent fracture. `unavailable` findings are left out.
REPORT_STATUS: dict[FindingState, ReportStatus] = {
    "present": "present",
    "absent": "absent",
    "uncertain": "uncertain",
    "not_detected": "uncertain",
}

SCHEMA_NAME = "cxr_structured_report"
SCHEMA_SHA256 = hashlib.sha256(json.dumps(StructuredReport.model_json_schema(), sort_keys=True).encode()).hexdigest()


class ReportRejected(ValueError):
    """The report model's output is not a valid structured report for this request; the message says why."""


def expected(assessed: list[FindingAssessment]) -> list[tuple[FindingName, ReportStatus]]:
    return [(a.finding, REPORT_STATUS[a.state]) for a in assessed if a.state in REPORT_STATUS]


def _finding_schema(finding: FindingName, status: ReportStatus) -> dict[str, Any]:
    schema = ReportFinding.model_json_schema()
    schema["properties"]["finding"] = {"const": finding}
    schema["properties"]["status"] = {"const": status}
    return schema


def request_schema(findings: list[tuple[FindingName, ReportStatus]]) -> dict[str, Any]:
    """StructuredReport's schema with `findings` fixed to this request's findings and statuses, in order."""
    schema = StructuredReport.model_json_schema()
    schema.pop("$defs", None)
    schema["properties"]["findings"] = {
        "type": "array",
        "prefixItems": [_finding_schema(name, status) for name, status in findings],
        "items": False,
        "minItems": len(findings),
        "maxItems": len(findings),
    }
    return schema


def response_format(findings: list[tuple[FindingName, ReportStatus]]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": SCHEMA_NAME, "schema": request_schema(findings), "strict": True}}


def validate(text: str, findings: list[tuple[FindingName, ReportStatus]]) -> StructuredReport:
    try:
        report = StructuredReport.model_validate_json(text)
    except ValidationError as error:
        raise ReportRejected(f"not a valid structured report: {describe(error, 'the output')}") from None
    written = [(f.finding, f.status) for f in report.findings]
    if written != findings:
        raise ReportRejected(f"the findings {written} differ from the findings given {findings}")
    return report
