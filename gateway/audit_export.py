"""The audit trail's records in the forms an audit repository reads: a FHIR R4 AuditEvent shaped after IHE's
Basic Audit Log Patterns (BALP), and a DICOM PS3.15 A.5 audit message (IHE ATNA) in an RFC 5424 syslog
message, framed for syslog over TLS (RFC 5425, octet counting). One record in, one resource or frame out.

What each carries is the record and no more: the actor by name, the endpoint and outcome, the request id,
the models by name and weights' sha256, the study as its keyed hash (never a UID or a patient identifier),
and the record's seq and seal, so that a repository's copy can be checked against the trail.
"""

from __future__ import annotations

import datetime as dt
import socket
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree

from fhir.resources.R4B.auditevent import AuditEvent

BALP = "https://profiles.ihe.net/ITI/BALP"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
STUDY_HASH_SYSTEM = "urn:cxr-serve:audit:study-hmac-sha256"
SOURCE_NAME = "cxr-serve gateway"
APP_NAME = "cxr-serve"
# RFC 5424 PRI: facility 10 (security/authorization), severity 5 (notice), as IHE ATNA (ITI-20) asks.
SYSLOG_PRI = 10 * 8 + 5
ATNA_MSGID = "IHE+RFC-3881"


@dataclass(frozen=True)
class EventKind:
    """How one endpoint's records are classed, by BALP (FHIR) and by DICOM (ATNA)."""

    interaction: str  # FHIR restful-interaction
    action: str  # C R U D E
    balp_profile: str
    dicom_event: tuple[str, str]  # DCM code, meaning


_ANALYSIS = EventKind("create", "C", "IHE.BasicAudit.Create", ("110110", "Patient Record"))
_KINDS = {
    "/v1/chat/completions": _ANALYSIS,
    "/v1/analyze": _ANALYSIS,
    "/ui/preview": EventKind("read", "R", "IHE.BasicAudit.Read", ("110110", "Patient Record")),
}
_READ = _KINDS["/ui/preview"]  # a reviewer opening the worklist, a result or its image
_REVIEW_PREFIX = "/v1/reviews"
_AUTHENTICATION = ("110114", "User Authentication")  # a refused credential, whatever the endpoint


def _kind(record: dict[str, Any]) -> EventKind:
    if record["endpoint"].startswith(_REVIEW_PREFIX):
        return _ANALYSIS if "review" in record else _READ  # a sign-off creates the verified SR
    return _KINDS.get(record["endpoint"], _ANALYSIS)


def _review_entities(review: dict[str, Any]) -> list[dict[str, Any]]:
    """A sign-off's result UIDs, each a DICOM object (audit-entity-type 2), the verdicts on the preliminary."""
    verdicts = [{"type": f"verdict:{finding}", "valueString": verdict} for finding, verdict in review["verdicts"].items()]
    uids = [("preliminary", review["preliminary_sop"], verdicts), ("verified", review["verified_sop"], [])]
    return [
        {
            "what": {"identifier": {"system": "urn:dicom:uid", "value": f"urn:oid:{uid}"}, "display": f"{role} SR"},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2"},
            **({"detail": detail} if detail else {}),
        }
        for role, uid, detail in uids
        if uid
    ]


def outcome_code(record: dict[str, Any]) -> str:
    """RFC 3881 / FHIR outcome: 0 success, 4 minor failure (refused, partial), 8 serious failure."""
    if record["status"] >= 500 or record["outcome"] == "failed":
        return "8"
    if record["status"] >= 400 or record["outcome"] == "partial":
        return "4"
    return "0"


def _seal_details(record: dict[str, Any]) -> list[dict[str, str]]:
    return [{"type": "seq", "valueString": str(record["seq"])}, {"type": "hash", "valueString": record["hash"]}]


def fhir_audit_event(record: dict[str, Any]) -> dict[str, Any]:
    """The record as a BALP-shaped AuditEvent, validated by fhir.resources (R4B)."""
    kind = _kind(record)
    entities: list[dict[str, Any]] = [
        {
            "what": {"identifier": {"value": record["request_id"]}},
            "type": {"system": f"{BALP}/CodeSystem/BasicAuditEntityType", "code": "XrequestId"},
            "detail": _seal_details(record),
        }
    ]
    if record["study"]:
        entities.append(
            {
                "what": {"identifier": {"system": STUDY_HASH_SYSTEM, "value": record["study"]}},
                "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2"},
            }
        )
    entities += [
        {"what": {"display": model["name"]}, "detail": [{"type": "sha256", "valueString": model["sha256"] or "unknown"}]}
        for model in record["models"]
    ]
    entities += _review_entities(record["review"]) if "review" in record else []
    resource = {
        "resourceType": "AuditEvent",
        "id": f"cxr-audit-{record['seq']}",
        "meta": {"profile": [f"{BALP}/StructureDefinition/{kind.balp_profile}"]},
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"},
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": kind.interaction}],
        "action": kind.action,
        "recorded": record["time"],
        "outcome": outcome_code(record),
        "outcomeDesc": f"HTTP {record['status']} ({record['outcome']}) at {record['endpoint']}",
        "agent": [
            {
                "type": {"coding": [{"system": DCM, "code": "110153", "display": "Source Role ID"}]},
                "who": {"identifier": {"value": record["actor"]}, "display": record["actor"]},
                "requestor": True,
            },
            {
                "type": {"coding": [{"system": DCM, "code": "110152", "display": "Destination Role ID"}]},
                "who": {"display": SOURCE_NAME},
                "requestor": False,
            },
        ],
        "source": {
            "observer": {"display": SOURCE_NAME},
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4"}],
        },
        "entity": entities,
    }
    return AuditEvent.model_validate(resource).model_dump(mode="json", exclude_none=True)


def _code(parent: ElementTree.Element, tag: str, code: tuple[str, str]) -> None:
    ElementTree.SubElement(parent, tag, {"csd-code": code[0], "codeSystemName": "DCM", "originalText": code[1]})


def dicom_audit_message(record: dict[str, Any], source_id: str) -> str:
    """The record as a DICOM PS3.15 A.5 AuditMessage (the schema's element and attribute names), one line."""
    refused_credential = record["status"] == 401
    message = ElementTree.Element("AuditMessage")
    event = ElementTree.SubElement(
        message,
        "EventIdentification",
        EventActionCode="E" if refused_credential else _kind(record).action,
        EventDateTime=record["time"],
        EventOutcomeIndicator=outcome_code(record),
    )
    _code(event, "EventID", _AUTHENTICATION if refused_credential else _kind(record).dicom_event)
    requestor = ElementTree.SubElement(message, "ActiveParticipant", UserID=record["actor"], UserIsRequestor="true")
    _code(requestor, "RoleIDCode", ("110153", "Source Role ID"))
    server = ElementTree.SubElement(message, "ActiveParticipant", UserID=source_id, UserIsRequestor="false")
    _code(server, "RoleIDCode", ("110152", "Destination Role ID"))
    source = ElementTree.SubElement(message, "AuditSourceIdentification", AuditSourceID=source_id)
    ElementTree.SubElement(source, "AuditSourceTypeCode", {"csd-code": "4", "originalText": "Application Server Process"})
    if record["study"]:
        study = ElementTree.SubElement(
            message,
            "ParticipantObjectIdentification",
            ParticipantObjectID=record["study"],
            ParticipantObjectTypeCode="2",
            ParticipantObjectTypeCodeRole="3",
        )
        _code(study, "ParticipantObjectIDTypeCode", ("110180", "Study Instance UID (its HMAC-SHA256 under the audit key)"))
    trail = ElementTree.SubElement(
        message, "ParticipantObjectIdentification", ParticipantObjectID=record["request_id"], ParticipantObjectTypeCode="2"
    )
    ElementTree.SubElement(trail, "ParticipantObjectIDTypeCode", {"csd-code": "XrequestId", "originalText": "Request id"})
    for detail in _seal_details(record):
        ElementTree.SubElement(trail, "ParticipantObjectDetail", type=detail["type"], value=detail["valueString"])
    return ElementTree.tostring(message, encoding="unicode")


def syslog_frame(record: dict[str, Any], source_id: str, hostname: str | None = None) -> bytes:
    """One RFC 5424 message with the DICOM audit message as MSG, octet-counted as RFC 5425 frames it."""
    timestamp = dt.datetime.fromisoformat(record["time"]).astimezone(dt.UTC).isoformat(timespec="milliseconds")
    host = (hostname or socket.gethostname())[:255] or "-"
    header = f"<{SYSLOG_PRI}>1 {timestamp.replace('+00:00', 'Z')} {host} {APP_NAME} - {ATNA_MSGID} -"
    message = f"{header} {dicom_audit_message(record, source_id)}".encode()
    return f"{len(message)} ".encode() + message
