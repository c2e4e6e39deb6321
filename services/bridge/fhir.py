"""A radiologist's signed result as a FHIR R4 DiagnosticReport, for the hospital's FHIR server.

Built with `fhir.resources` (its R4B models: FHIR 4.3, whose DiagnosticReport and Observation are R4's), so it
is validated as it is made. It mirrors the signed ORU^R01 (services/bridge/oru.py):

    status            final, or corrected when the radiologist changed the AI's result (the ORU's F or C)
    identifier        the verified SR's SOP Instance UID (urn:dicom:uid), which names the result everywhere
    subject           the patient by the image's Patient ID (and its issuer when the image names one)
    imagingStudy      the study by its Study Instance UID
    resultsInterpreter the reviewer, by their login and name (as the verified SR's Verifying Observer)
    result            one contained Observation per finding: the signed state as SNOMED CT, and a note of the
                      AI's call and the reviewer's verdict (accepted, rejected, modified)
    presentedForm     the report text as signed (text/plain)

It goes by a conditional update on that identifier (services/bridge/destinations.py, `FhirServer`): sent twice
(a retry after a lost answer), it is one DiagnosticReport, not two.
"""

from __future__ import annotations

import base64
from typing import Any

from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from pydicom.dataset import Dataset

from services.contract.review import SignedFindingOut, SignedOut

DICOM_UID = "urn:dicom:uid"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
FINDING_CODES = {"pneumonia": ("233604007", "Pneumonia"), "fracture": ("125605004", "Fracture of bone")}
STATE_CODES = {"present": ("52101004", "Present"), "absent": ("2667000", "Absent"), "uncertain": ("82334004", "Indeterminate")}


def _coding(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def identifier(signed: SignedOut) -> dict[str, str]:
    return {"system": DICOM_UID, "value": f"urn:oid:{signed.verified_sop}"}


def _observation(finding: SignedFindingOut, status: str, interpreter: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": finding.finding,
        "status": status,
        "category": [_coding("http://terminology.hl7.org/CodeSystem/observation-category", "imaging", "Imaging")],
        "code": _coding(SNOMED, *FINDING_CODES[finding.finding]),
        "valueCodeableConcept": _coding(SNOMED, *STATE_CODES[finding.state]),
        "performer": [interpreter],
        "note": [{"text": f"AI ({finding.model}, sha256 {finding.sha256}): {finding.ai_call}; radiologist: {finding.verdict}"}],
    }


def _subject(verified_sr: Dataset) -> dict[str, Any]:
    patient: dict[str, Any] = {"value": str(verified_sr.get("PatientID", "")) or "unknown"}
    issuer = str(verified_sr.get("IssuerOfPatientID", ""))
    if issuer:
        patient["assigner"] = {"display": issuer}
    return {"identifier": patient}


def diagnostic_report(verified_sr: Dataset, signed: SignedOut, report: str) -> dict[str, Any]:
    """The signed result as FHIR JSON; `verified_sr` carries the image's patient and study modules."""
    status = "corrected" if signed.changed else "final"
    interpreter = {"identifier": {"value": signed.login}, "display": signed.reviewer.replace("^", " ").strip()}
    made = DiagnosticReport(
        status=status,
        identifier=[identifier(signed)],
        category=[_coding(LOINC, "LP29684-5", "Radiology")],
        code=_coding(LOINC, "36554-4", "XR Chest Single view"),
        subject=_subject(verified_sr),
        imagingStudy=[{"identifier": {"system": DICOM_UID, "value": f"urn:oid:{signed.study}"}}],
        issued=signed.signed_at,
        resultsInterpreter=[interpreter],
        contained=[_observation(finding, status, interpreter) for finding in signed.findings],
        result=[{"reference": f"#{finding.finding}"} for finding in signed.findings],
        presentedForm=[
            {
                "contentType": "text/plain; charset=utf-8",
                "data": base64.b64encode(report.encode()).decode(),
                "title": "Report signed by the radiologist",
            }
        ],
    )
    data: dict[str, Any] = made.model_dump(mode="json", exclude_none=True)
    return data
