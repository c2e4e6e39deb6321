"""The ORU^R01 builder on texts a real report model writes: long lines, HL7's delimiters, line breaks. Read back
with hl7apy (strict) and python-hl7, it says what the analysis said. (Found by scripts/bench_bridge.py: a
fracture text of 600 characters was refused by hl7apy, whose OBX-5 repetitions are at most 199.)"""

from __future__ import annotations

import io
from datetime import datetime

import hl7
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message
from pydicom import dcmread

from services.bridge import codes, oru
from services.bridge.pacs.sr import Analysis
from tests.bridge.conftest import JPEG
from tests.dicom_files import from_jpeg

LONG = "Fracture | of the 5th ^ rib & maybe ~ the 6th \\ see prior. " * 12  # ~700 characters, every delimiter
REPORT = f"FINDINGS:\n{LONG}\n\nIMPRESSION: {'x' * 450}"


def _analysis() -> Analysis:
    cxr = {
        "classification": {"predicted_class": "PNEUMONIA", "probabilities": {"PNEUMONIA": 0.91, "NORMAL": 0.09}},
        "fracture": {"suspected": True, "text": LONG},
        "disclaimer": "Preliminary AI output: for review by a radiologist.",
        "models": [{"role": "fracture", "name": "stand-in-vlm", "sha256": "ab" * 32, "clinical_use": False}],
    }
    return Analysis(cxr=cxr, report=REPORT)


def _values(message: hl7.Message, code) -> list[str]:
    [obx] = [segment for segment in message.segments("OBX") if str(segment[3]).split("^")[0] == code.value]
    return [message.unescape(str(repetition)) for repetition in obx[5]]


def test_long_texts_with_delimiters_and_line_breaks_survive_the_round_trip():
    source = dcmread(io.BytesIO(from_jpeg(JPEG, "mono2-8bit")))
    text = oru.build(source, _analysis(), ("CXRSERVE", "HOSP"), ("RIS", "RAD"), datetime(2026, 12, 2, 9, 30).astimezone())
    parse_message(text, validation_level=VALIDATION_LEVEL.STRICT)  # hl7apy's own strict reading
    message = hl7.parse(text)
    assert str(message.segment("MSH")[10]) == oru.control_id(str(source.SOPInstanceUID))
    fracture = _values(message, codes.FRACTURE_TEXT)
    assert len(fracture) > 1 and all(len(piece) <= 199 for piece in fracture)  # wrapped, not refused
    assert " ".join(fracture) == LONG
    report = _values(message, codes.REPORT)
    assert report[:1] == ["FINDINGS:"] and "" in report  # a line per repetition, the empty line kept
    assert " ".join(report[1 : report.index("")]) == LONG
    assert "".join(report[report.index("") + 1 :]).replace(" ", "") == f"IMPRESSION:{'x' * 450}"
    assert any("stand-in model: not for clinical use" in line for line in _values(message, codes.MODEL))
