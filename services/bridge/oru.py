"""One analysed X-ray → an HL7 v2.5.1 ORU^R01 for the RIS, built and validated with hl7apy.

- MSH-10, the control id, is derived from the SOP Instance UID: a resend carries the same one.
- PID from the image's Patient module (the RIS matches on it); never logged.
- ORC/OBR: the Accession Number as placer and filler order number, the study's date and time, result
  status P (preliminary): cxr-serve never sends a final result of its own. A radiologist's signature
  (pacs/review_api.py) sends the signed result: F, or C when it differs from the AI's; the reviewer in
  OBR-32 and OBX-16; per finding the state as signed and the verdict on the AI's call; the signed report.
- OBX per observation, coded as in the SR (services/bridge/codes.py): the Study Instance UID, the
  classifier's finding and probability, the fracture model's finding and its text, the report (TX, a repetition per line), the
  disclaimer (which carries the stand-in notice when a stand-in answered), and each model that ran.
Text is escaped by hl7apy's own TX type; MSH-18 says UTF-8 (reports are English or Chinese).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message
from hl7apy.factories import datatype_factory
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code

from services.bridge import codes
from services.bridge.pacs.sr import Analysis
from services.contract.review import SignedOut

VERSION = "2.5.1"
CHARSET = "UNICODE UTF-8"
_CONTROL_ID_LENGTH = 20  # MSH-10 is an ST of 20 in v2.5.1
# hl7apy validates a repetition of OBX-5 as an ST of at most 199 characters (HL7's TX allows 65536; hl7apy types
# a "varies" field as ST and cannot be told otherwise under strict validation): longer lines are wrapped.
_PIECE_MAX = 199


def control_id(sop_instance_uid: str, kind: str = "preliminary") -> str:
    """The message's control id: the same for every send of the same result."""
    return hashlib.sha256(f"{kind}:{sop_instance_uid}".encode()).hexdigest()[:_CONTROL_ID_LENGTH]


def _escaped(value: str) -> str:
    """`value` escaped by hl7apy's own TX type (| ^ & ~ \\ become escape sequences)."""
    return str(datatype_factory("TX", value, version=VERSION, validation_level=VALIDATION_LEVEL.QUIET).to_er7())


def _text(value: str) -> str:
    """One escaped value; line breaks become spaces."""
    return _escaped(" ".join(value.splitlines()))


def _pieces(line: str) -> Iterator[str]:
    """One line as escaped pieces of at most _PIECE_MAX characters, broken at spaces (inside a word too long)."""
    current = ""
    for word in line.split(" "):
        candidate = f"{current} {word}" if current else word
        if len(_escaped(candidate)) <= _PIECE_MAX:
            current = candidate
            continue
        if current:
            yield _escaped(current)
        current = word
        while len(_escaped(current)) > _PIECE_MAX:
            cut = max(end for end in range(1, len(current) + 1) if len(_escaped(current[:end])) <= _PIECE_MAX)
            yield _escaped(current[:cut])
            current = current[cut:]
    yield _escaped(current)


def _lines(value: str) -> list[str]:
    """A text as OBX-5 repetitions, one per line (a TX value breaks lines between repetitions); a line over
    _PIECE_MAX characters is wrapped at spaces into more than one."""
    return [piece for line in value.replace("\r\n", "\n").replace("\r", "\n").split("\n") for piece in _pieces(line)]


def _coded(code: Code) -> str:
    return "^".join(_text(part) for part in (code.value, code.meaning, code.scheme_designator))


def _person_name(dicom_name: object) -> str:
    """DICOM PN family^given^middle^prefix^suffix → HL7 XPN family^given^middle^suffix^prefix."""
    parts = (str(dicom_name or "").split("=")[0].split("^") + [""] * 5)[:5]
    family, given, middle, prefix, suffix = (_text(part) for part in parts)
    return "^".join((family, given, middle, suffix, prefix)).rstrip("^")


def _observations(source: Dataset, analysis: Analysis) -> Iterator[tuple[str, Code, str | list[str], str]]:
    """(value type, observation identifier, value, units) in the order they are sent; a list: one repetition
    of OBX-5 per line, as a TX value breaks lines."""
    cxr: dict[str, Any] = analysis.cxr
    yield "ST", codes.DICOM_STUDY, _text(str(source.StudyInstanceUID)), ""
    classification = cxr["classification"]
    predicted = codes.CLASS_CODES.get(classification["predicted_class"])
    if predicted is not None:
        yield "CWE", codes.PNEUMONIA, _coded(predicted), ""
    probability = float(classification["probabilities"].get("PNEUMONIA", 0.0))
    yield "NM", codes.PROBABILITY, f"{probability:.6f}", _coded(codes.NO_UNITS)
    fracture = cxr.get("fracture")
    if fracture is not None:
        yield "CWE", codes.FRACTURE, _coded(codes.DESCRIBED if fracture["suspected"] else codes.NOT_DETECTED), ""
        yield "TX", codes.FRACTURE_TEXT, _lines(fracture["text"]), ""
    yield "TX", codes.REPORT, _lines(analysis.report), ""
    yield "TX", codes.DISCLAIMER, _lines(cxr["disclaimer"]), ""
    for model in cxr["models"]:
        use = "" if model["clinical_use"] else " (stand-in model: not for clinical use)"
        yield "TX", codes.MODEL, _lines(f"{model['role']}: {model['name']} sha256 {model.get('sha256') or 'unknown'}{use}"), ""


ResultStatus = Literal["P", "F", "C"]  # preliminary; final (signed as the AI had it); corrected (signed otherwise)


def _order(source: Dataset, sender: tuple[str, str], receiver: tuple[str, str], now: datetime, kind: str, status: str) -> Any:
    """MSH, PID, ORC and OBR of an ORU^R01 for `source`'s study; the order observation group, for its OBXs."""
    message = Message("ORU_R01", version=VERSION, validation_level=VALIDATION_LEVEL.STRICT)
    msh = message.msh
    msh.msh_3, msh.msh_4 = _text(sender[0]), _text(sender[1])
    msh.msh_5, msh.msh_6 = _text(receiver[0]), _text(receiver[1])
    msh.msh_7 = now.strftime("%Y%m%d%H%M%S")
    msh.msh_9 = "ORU^R01^ORU_R01"
    msh.msh_10 = control_id(str(source.SOPInstanceUID), kind)
    msh.msh_11, msh.msh_12, msh.msh_18 = "P", VERSION, CHARSET
    result = message.add_group("ORU_R01_PATIENT_RESULT")
    pid = result.add_group("ORU_R01_PATIENT").add_segment("PID")
    issuer = _text(str(source.get("IssuerOfPatientID", "") or ""))
    pid.pid_3 = f"{_text(str(source.get('PatientID', '') or ''))}^^^{issuer}".rstrip("^")
    pid.pid_5 = _person_name(source.get("PatientName"))
    pid.pid_7 = _text(str(source.get("PatientBirthDate", "") or ""))
    pid.pid_8 = _text(str(source.get("PatientSex", "") or ""))
    order = result.add_group("ORU_R01_ORDER_OBSERVATION")
    accession = _text(str(source.get("AccessionNumber", "") or ""))
    order.orc.orc_1, order.orc.orc_2, order.orc.orc_3 = "RE", accession, accession
    obr = order.obr
    obr.obr_1, obr.obr_2, obr.obr_3, obr.obr_4 = "1", accession, accession, _coded(codes.CHEST_XRAY)
    obr.obr_7 = _text(f"{source.get('StudyDate', '') or ''}{source.get('StudyTime', '') or ''}".split(".")[0])
    obr.obr_22, obr.obr_25 = now.strftime("%Y%m%d%H%M%S"), status
    return order


def _add_observations(order: Any, observations: Iterator[tuple[str, Code, str | list[str], str]], status: str) -> list[Any]:
    added = []
    for index, (kind, identifier, value, units) in enumerate(observations, start=1):
        obx = order.add_group("ORU_R01_OBSERVATION").obx
        obx.obx_1, obx.obx_2, obx.obx_3 = str(index), kind, _coded(identifier)
        for line in [value] if isinstance(value, str) else value:
            obx.add_field("OBX_5").value = line
        if units:
            obx.obx_6 = units
        obx.obx_11 = status
        added.append(obx)
    return added


def build(source: Dataset, analysis: Analysis, sender: tuple[str, str], receiver: tuple[str, str], now: datetime) -> str:
    """The preliminary ORU^R01 as ER7 text (segments separated by CR). `sender`/`receiver`: (application, facility)."""
    order = _order(source, sender, receiver, now, "preliminary", "P")
    _add_observations(order, _observations(source, analysis), "P")
    return str(order.parent.parent.to_er7())


_SIGNED_STATES = {"present": codes.PRESENT, "absent": codes.ABSENT, "uncertain": codes.INDETERMINATE}
_VERDICTS = {"accepted": codes.ACCEPTED, "rejected": codes.REJECTED, "modified": codes.MODIFIED}
_FINDINGS = {"pneumonia": codes.PNEUMONIA, "fracture": codes.FRACTURE}


def _signed_observations(
    verified_sr: Dataset, signed: SignedOut, report: str
) -> Iterator[tuple[str, Code, str | list[str], str]]:
    yield "ST", codes.DICOM_STUDY, _text(str(verified_sr.StudyInstanceUID)), ""
    for finding in signed.findings:
        yield "CWE", _FINDINGS[finding.finding], _coded(_SIGNED_STATES[finding.state]), ""
        yield "CWE", codes.REVIEW_VERDICT, _coded(_VERDICTS[finding.verdict]), ""
    yield "TX", codes.SIGNED_REPORT, _lines(report), ""


def build_signed(
    verified_sr: Dataset, signed: SignedOut, report: str, sender: tuple[str, str], receiver: tuple[str, str], now: datetime
) -> str:
    """The signed result's ORU^R01: status F, or C when the radiologist changed the AI's result; the reviewer
    as OBR-32 (principal result interpreter) and each OBX's responsible observer (OBX-16); `verified_sr` is the
    verified SR (pacs/verified.py), which carries the patient and study modules of the image."""
    status: ResultStatus = "C" if signed.changed else "F"
    order = _order(verified_sr, sender, receiver, now, "signed", status)
    interpreter = f"{_text(signed.login)}&{_text(signed.reviewer.replace('^', ' '))}"
    order.obr.obr_32 = interpreter
    observer = f"{_text(signed.login)}^{_person_name(signed.reviewer)}"
    for obx in _add_observations(order, _signed_observations(verified_sr, signed, report), status):
        obx.obx_16 = observer
    return str(order.parent.parent.to_er7())
