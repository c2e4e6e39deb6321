"""The merge: stage one's results and the validated report assembled into the answer, in one place.

`cxr_findings` is built once per request, streamed as `cxr_findings` when stage one is done;
`cxr_result` completes that same object with the whole run's timings and warnings, the report and the
provenance. Nothing is recomputed between the two, so the streamed findings and the answer cannot differ.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.clinical import rules
from gateway.clinical.abstention import FindingAssessment
from gateway.clinical.consistency import Contradiction
from gateway.clinical.content import Language
from gateway.clinical.structured import StructuredReport
from gateway.protocol import (
    CxrFindings,
    CxrResult,
    FractureResult,
    ModelInfo,
    Provenance,
    StageTiming,
    StageWarning,
)
from services.contract.classification import Classification
from services.contract.dicom import DicomReferences


@dataclass(frozen=True)
class Findings:
    """Stage one's results, with the rules applied: what the report prompt is built from."""

    classification: Classification
    fracture: FractureResult | None
    assessment: rules.Assessment
    assessed: list[FindingAssessment]


def cxr_findings(
    findings: Findings,
    language: Language,
    source: DicomReferences | None,
    timings: dict[str, StageTiming],
    warnings: list[StageWarning],
    disclaimer: str,
) -> CxrFindings:
    a = findings.assessment
    return CxrFindings(
        language=language,
        source=source,
        classification=findings.classification,
        fracture=findings.fracture,
        risk_level=a.risk_level,
        confidence_interpretation=a.confidence_interpretation,
        recommendations=a.recommendations,
        assessments=findings.assessed,
        timings_ms=timings,
        warnings=warnings,
        disclaimer=disclaimer,
    )


def cxr_result(
    found: CxrFindings,
    timings: dict[str, StageTiming],
    warnings: list[StageWarning],
    report: StructuredReport | None,
    contradictions: list[Contradiction],
    models: list[ModelInfo],
    made_by: Provenance,
) -> CxrResult:
    """`complete` only with both optional stages (ChexFract and a validated report); else `partial`."""
    status = "complete" if report is not None and found.fracture is not None else "partial"
    return CxrResult(
        **{**dict(found), "timings_ms": timings, "warnings": warnings},
        status=status,
        report_available=report is not None,
        structured_report=report,
        report_contradictions=contradictions,
        models=models,
        provenance=made_by,
    )
