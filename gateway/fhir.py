"""The merged result as a FHIR R4 Bundle, for an electronic health record.

Built with `fhir.resources` (its R4B models: FHIR 4.3, whose DiagnosticReport,
Observation, Device and Provenance are R4's), so every resource is validated
as it is made. The mapping (docs/integrators.md, "FHIR R4 output"):

    DiagnosticReport  status preliminary; category Radiology (LOINC LP29684-5); code XR Chest Single view
                      (LOINC 36554-4); subject / encounter / imagingStudy when the request gives them;
                      conclusion; conclusionCode Pneumonia (SNOMED CT 233604007) when pneumonia is present;
                      the narrative as presentedForm (text/markdown)
    Observation       one per finding: its state as SNOMED CT, the pneumonia probability as a component,
                      the reason as a note; `unavailable` as dataAbsentReason
    Device            one per model: name, sha256, licence
    Provenance        the report and observations, produced by the Devices (the AI), recorded now

Bundle entries reference each other by `urn:uuid:`; patient references are the
caller's, passed through as given and never logged.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import uuid
from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.provenance import Provenance

from gateway.clinical.abstention import FindingAssessment
from gateway.errors import InvalidRequest
from gateway.protocol import CxrResult, ModelInfo
from services.contract.roles import Role

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
FHIR_MEDIA_TYPE = "application/fhir+json"

FINDING_CODES = {
    "pneumonia": (SNOMED, "233604007", "Pneumonia"),
    "fracture": (SNOMED, "125605004", "Fracture of bone"),
}
STATE_CODES = {
    "present": (SNOMED, "52101004", "Present"),
    "absent": (SNOMED, "2667000", "Absent"),
    "uncertain": (SNOMED, "82334004", "Indeterminate"),
    "not_detected": (SNOMED, "260415000", "Not detected"),
}
FINDING_SOURCE = {"pneumonia": Role.CLASSIFIER, "fracture": Role.FRACTURE}  # the model each finding comes from
_REFERENCE = re.compile(r"^[A-Z][A-Za-z]{1,63}/[A-Za-z0-9\-.]{1,64}$")


@dataclass(frozen=True)
class Subject:
    """References the caller supplies (e.g. `Patient/123`); each optional, each checked for FHIR's literal form."""

    subject: str | None = None
    encounter: str | None = None
    imaging_study: str | None = None

    @classmethod
    def checked(cls, subject: str | None, encounter: str | None, imaging_study: str | None) -> Subject:
        expected = {"subject": ("Patient", "Group"), "encounter": ("Encounter",), "imaging_study": ("ImagingStudy",)}
        given = {"subject": subject, "encounter": encounter, "imaging_study": imaging_study}
        for name, value in given.items():
            if value is None:
                continue
            if not _REFERENCE.match(value) or value.split("/", 1)[0] not in expected[name]:
                kinds = " or ".join(f"{kind}/<id>" for kind in expected[name])
                raise InvalidRequest(f"fhir.{name} must be a FHIR reference {kinds}", param=f"fhir.{name}")
        return cls(subject, encounter, imaging_study)


def _coding(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _device(model: ModelInfo) -> Device:
    return Device(
        status="active",
        deviceName=[{"name": model.name, "type": "model-name"}],
        type={"text": f"AI model ({model.role})"},
        version=[{"type": {"text": "sha256"}, "value": model.sha256 or "unknown"}],
        note=[{"text": f"licence: {model.licence or 'unknown'}; clinical use: {model.clinical_use}"}],
    )


def _observation(finding: FindingAssessment, subject: Subject, device: str, issued: str) -> Observation:
    values: dict[str, Any] = {
        "status": "preliminary" if finding.state != "unavailable" else "cancelled",
        "category": [_coding("http://terminology.hl7.org/CodeSystem/observation-category", "imaging", "Imaging")],
        "code": _coding(*FINDING_CODES[finding.finding]),
        "issued": issued,
        "device": {"reference": device},
        "note": [{"text": f"{finding.statement}: {finding.reason}"}],
    }
    if subject.subject:
        values["subject"] = {"reference": subject.subject}
    if finding.state == "unavailable":
        system = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
        values["dataAbsentReason"] = _coding(system, "error", "Error")
    else:
        values["valueCodeableConcept"] = _coding(*STATE_CODES[finding.state])
    if finding.probability is not None:
        quantity = {
            "value": round(finding.probability, 6),
            "unit": "probability",
            "system": "http://unitsofmeasure.org",
            "code": "1",
        }
        values["component"] = [{"code": {"text": "classifier probability"}, "valueQuantity": quantity}]
    return Observation(**values)


def _report(result: CxrResult, narrative: str, subject: Subject, observations: list[str], issued: str) -> DiagnosticReport:
    pneumonia = next(a for a in result.assessments if a.finding == "pneumonia")
    conclusion = (
        result.structured_report.impression if result.structured_report else "; ".join(a.statement for a in result.assessments)
    )
    values: dict[str, Any] = {
        "status": "preliminary",
        "category": [_coding(LOINC, "LP29684-5", "Radiology")],
        "code": _coding(LOINC, "36554-4", "XR Chest Single view"),
        "issued": issued,
        "result": [{"reference": ref} for ref in observations],
        "conclusion": f"{conclusion} ({result.disclaimer})",
        "presentedForm": [
            {
                "contentType": "text/markdown; charset=utf-8",
                "language": result.language,
                "data": base64.b64encode(narrative.encode()).decode(),
                "title": "AI-generated preliminary report",
            }
        ],
    }
    if pneumonia.state == "present":
        values["conclusionCode"] = [_coding(*FINDING_CODES["pneumonia"])]
    for field, key in (("subject", "subject"), ("encounter", "encounter")):
        if getattr(subject, field):
            values[key] = {"reference": getattr(subject, field)}
    if subject.imaging_study:
        values["imagingStudy"] = [{"reference": subject.imaging_study}]
    return DiagnosticReport(**values)


def bundle(result: CxrResult, narrative: str, subject: Subject) -> dict[str, Any]:
    """The Bundle as JSON-ready data: DiagnosticReport, Observations, Devices, Provenance."""
    issued = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    devices = {model.role: (_urn(), _device(model)) for model in result.models}
    observations = [(_urn(), _observation(a, subject, devices[FINDING_SOURCE[a.finding]][0], issued)) for a in result.assessments]
    report_urn = _urn()
    report = _report(result, narrative, subject, [urn for urn, _ in observations], issued)
    provenance = Provenance(
        target=[{"reference": report_urn}, *({"reference": urn} for urn, _ in observations)],
        recorded=issued,
        agent=[
            {
                "type": _coding("http://terminology.hl7.org/CodeSystem/provenance-participant-type", "assembler", "Assembler"),
                "who": {"reference": urn, "display": f"AI model {model.name}"},
            }
            for model in result.models
            for urn in (devices[model.role][0],)
        ],
    )
    entries = [(report_urn, report), *observations, *devices.values(), (_urn(), provenance)]
    made = Bundle(
        type="collection",
        timestamp=issued,
        entry=[{"fullUrl": urn, "resource": resource} for urn, resource in entries],
    )
    data: dict[str, Any] = made.model_dump(mode="json", exclude_none=True)
    return data
