"""The verified SR a radiologist's signature writes: checked by DCMTK and dicom3tools, read back by our reader."""

from __future__ import annotations

import datetime as dt
import io
import shutil
import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread

from services.bridge.pacs import sr, verified
from services.bridge.pacs.verified import FindingVerdict, Review, Reviewer, ReviewRefused
from tests.bridge.conftest import JPEG
from tests.dicom_files import from_jpeg

# The shape of the gateway's answer that the SR reads (test_analyze.py uses the stack's own).
ANSWER = {
    "classification": {"predicted_class": "PNEUMONIA", "confidence": 0.9, "probabilities": {"PNEUMONIA": 0.9, "NORMAL": 0.1}},
    "fracture": {"text": "No fracture is seen.", "suspected": False, "evidence": []},
    "models": [
        {"role": "classifier", "name": "pneumonia-classifier", "sha256": "ab" * 32},
        {"role": "fracture", "name": "chexfract", "sha256": "cd" * 32},
    ],
    "disclaimer": "Preliminary AI output for review by a radiologist.",
}
DR_CHEN = Reviewer(name="Chen^Wei", login="dr.chen", organization="Radiology, General Hospital")
SIGNED_AT = dt.datetime(2026, 12, 2, 9, 30, 15, tzinfo=dt.UTC)


def _preliminary():
    image = dcmread(io.BytesIO(from_jpeg(JPEG, "mono2-8bit")))
    return sr.build(image, sr.Analysis(cxr=ANSWER, report="Findings suggest pneumonia."))


def _review(*verdicts: FindingVerdict, report: str = "Right lower lobe pneumonia.", edited: bool = False) -> Review:
    return Review(reviewer=DR_CHEN, verdicts=list(verdicts), report=report, report_edited=edited, signed_at=SIGNED_AT)


def _saved(dataset, tmp_path: Path) -> Path:
    path = tmp_path / f"{dataset.SOPInstanceUID}.dcm"
    dataset.save_as(path, enforce_file_format=True)
    return path


def test_the_preliminary_sr_reads_as_the_ai_findings_by_model():
    found = {f.finding: f for f in verified.read_preliminary(_preliminary())}
    assert (found["pneumonia"].call, found["pneumonia"].model, found["pneumonia"].sha256) == (
        "present",
        "pneumonia-classifier",
        "ab" * 32,
    )
    assert (found["fracture"].call, found["fracture"].model) == ("absent", "chexfract")  # not detected: a negative call


def test_a_signed_review_is_a_verified_sr_superseding_the_preliminary(tmp_path):
    preliminary = _preliminary()
    review = _review(
        FindingVerdict("pneumonia", "modified", state="uncertain", comment="Subtle; compare with prior."),
        FindingVerdict("fracture", "rejected"),
        edited=True,
    )
    built = verified.build(preliminary, review)
    assert (built.VerificationFlag, built.CompletionFlag, built.PreliminaryFlag) == ("VERIFIED", "COMPLETE", "FINAL")
    assert built.StudyInstanceUID == preliminary.StudyInstanceUID and built.PatientID == preliminary.PatientID
    assert built.SOPInstanceUID == verified.verified_instance_uid(preliminary.SOPInstanceUID)  # one per result
    path = _saved(built, tmp_path)
    dumped = subprocess.run(["dsrdump", str(path)], capture_output=True, text=True, timeout=60)
    assert dumped.returncode == 0, dumped.stderr
    assert "VERIFIED" in dumped.stdout and "Chen^Wei" in dumped.stdout and "Predecessor" not in dumped.stderr
    if shutil.which("dciodvfy") is None:
        pytest.fail("the verified SR is validated by dicom3tools' dciodvfy: apt-get install dicom3tools (make test-packages)")
    checked = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    errors = [line for line in checked.stderr.splitlines() if line.startswith("Error")]
    assert errors == [], checked.stderr

    back = verified.read_verified(dcmread(path))
    assert (back.reviewer, back.login, back.signed_at) == ("Chen^Wei", "dr.chen", SIGNED_AT)
    assert back.preliminary_uid == preliminary.SOPInstanceUID
    assert {f.ai.finding: (f.ai.call, f.verdict, f.state) for f in back.findings} == {
        "pneumonia": ("present", "modified", "uncertain"),
        "fracture": ("absent", "rejected", "present"),  # rejecting "not detected" signs a fracture
    }
    assert {f.ai.finding: f.ai.sha256 for f in back.findings} == {"pneumonia": "ab" * 32, "fracture": "cd" * 32}
    assert back.report == "Right lower lobe pneumonia." and back.report_edited is True
    assert review.changed is True


def test_accepting_everything_signs_the_ai_calls_unchanged(tmp_path):
    review = _review(FindingVerdict("pneumonia", "accepted"), FindingVerdict("fracture", "accepted"), report="As reported.")
    back = verified.read_verified(dcmread(_saved(verified.build(_preliminary(), review), tmp_path)))
    assert [(f.ai.finding, f.verdict, f.state) for f in back.findings] == [
        ("pneumonia", "accepted", "present"),
        ("fracture", "accepted", "absent"),
    ]
    assert back.report_edited is False and review.changed is False


@pytest.mark.parametrize(
    ("verdicts", "message"),
    [
        ([FindingVerdict("pneumonia", "accepted")], r"findings are \['fracture', 'pneumonia'\]"),
        ([FindingVerdict("pneumonia", "modified"), FindingVerdict("fracture", "accepted")], "needs the corrected state"),
        (
            [FindingVerdict("pneumonia", "accepted", state="absent"), FindingVerdict("fracture", "accepted")],
            "accepted means present, not absent",
        ),
        (
            [
                FindingVerdict("pneumonia", "accepted"),
                FindingVerdict("pneumonia", "rejected"),
                FindingVerdict("fracture", "accepted"),
            ],
            "two verdicts",
        ),
    ],
)
def test_a_review_that_does_not_fit_the_result_is_refused_by_name(verdicts, message):
    with pytest.raises(ReviewRefused, match=message):
        verified.build(_preliminary(), _review(*verdicts))
