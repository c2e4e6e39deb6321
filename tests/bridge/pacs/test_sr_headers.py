"""The SR built for images as they come from real modalities: Type 2 attributes missing, or a Type 1 one."""

from __future__ import annotations

import io
import subprocess

import pytest
from pydicom import dcmread

from services.bridge.pacs import sr
from tests.bridge.conftest import JPEG
from tests.dicom_files import from_jpeg

# The shape of the gateway's answer that the SR reads (a result of the stack is used in test_analyze.py).
ANSWER = {
    "classification": {"predicted_class": "PNEUMONIA", "confidence": 0.9, "probabilities": {"PNEUMONIA": 0.9, "NORMAL": 0.1}},
    "models": [{"role": "classifier", "name": "pneumonia-classifier", "sha256": "ab" * 32}],
    "fracture": None,
    "disclaimer": "Preliminary AI output for review by a radiologist.",
}
OFTEN_MISSING = ("PatientBirthDate", "PatientSex", "StudyDate", "AccessionNumber", "ReferringPhysicianName")


def _image(*without: str):
    image = dcmread(io.BytesIO(from_jpeg(JPEG, "mono2-8bit")))
    for keyword in without:
        delattr(image, keyword) if keyword in image else None
    return image


def test_an_image_without_type_2_attributes_gets_an_sr_with_them_empty(tmp_path):
    image = _image(*OFTEN_MISSING)
    built = sr.build(image, sr.Analysis(cxr=ANSWER, report="Findings suggest pneumonia."))
    assert all(built[keyword].value in ("", None) for keyword in OFTEN_MISSING)
    assert all(keyword not in image for keyword in OFTEN_MISSING)  # the image itself is left as it came
    path = tmp_path / "sr.dcm"
    built.save_as(path, enforce_file_format=True)
    dumped = subprocess.run(["dsrdump", str(path)], capture_output=True, text=True, timeout=60)
    assert dumped.returncode == 0 and "Comprehensive SR" in dumped.stdout  # DCMTK reads it back


def test_an_image_without_a_type_1_attribute_is_a_named_refusal():
    with pytest.raises(sr.SourceIncomplete, match="no SeriesInstanceUID"):
        sr.build(_image("SeriesInstanceUID"), sr.Analysis(cxr=ANSWER, report="r"))
