"""`python -m services.bridge pacs analyze --study UID` against a real Orthanc: QIDO, WADO, the gateway, STOW of a TID 1500 SR."""

from __future__ import annotations

import io

import httpx
import pytest
from pydicom import dcmread
from pydicom.uid import ComprehensiveSRStorage, generate_uid

from services.bridge.pacs import sr
from tests.bridge.pacs.helpers import NORMAL, PNEUMONIA, measurement_groups, our_srs, run_pacs, texts_of, upload
from tests.dicom_files import SECRETS, from_jpeg


@pytest.fixture(scope="module")
def study(orthanc):
    """One study: two chest DX images, a CT series (not eligible) and a DX of the head (refused by the gateway)."""
    uid = generate_uid()
    images = [from_jpeg(PNEUMONIA, "jpeg2000", study_uid=uid), from_jpeg(NORMAL, "mono1", study_uid=uid)]
    ct = from_jpeg(NORMAL, "mono2-8bit", study_uid=uid, modality="CT")
    head = from_jpeg(NORMAL, "mono2-8bit", study_uid=uid, body_part="HEAD")
    upload(orthanc.client(), *images, ct, head)
    return uid, images, head


@pytest.fixture(scope="module")
def first_run(study, pacs_env):
    return run_pacs(pacs_env, "analyze", "--study", study[0])


def gateway_answer(pacs_env, dicom: bytes) -> dict:
    files = {"file": ("x.dcm", dicom, "application/dicom")}
    response = httpx.post(f"{pacs_env['CXR_PACS_GATEWAY_URL']}/v1/analyze", files=files, data={"language": "en"}, timeout=300)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_study_gets_one_sr_per_chest_image_and_says_why_one_was_refused(first_run, study, orthanc):
    uid, images, _ = study
    assert first_run.returncode == 0, first_run.stdout + first_run.stderr
    lines = first_run.stdout.splitlines()
    assert sum(line.startswith("stored") for line in lines) == 2
    refused = [line for line in lines if line.startswith("refused")]
    assert len(refused) == 1 and "body part HEAD is not analysed" in refused[0]
    srs = our_srs(orthanc.client(), uid)
    assert len(srs) == 2 and all(s.SOPClassUID == ComprehensiveSRStorage for s in srs)
    assert sorted(str(sr.source_uid(s)) for s in srs) == sorted(_sop(d) for d in images)
    assert not [secret for secret in SECRETS if secret in first_run.stdout + first_run.stderr]


def _sop(dicom: bytes) -> str:
    return str(dcmread(io.BytesIO(dicom)).SOPInstanceUID)


def test_the_sr_carries_what_the_gateway_answered_marked_preliminary(first_run, study, orthanc, pacs_env):
    uid, images, _ = study
    by_source = {str(sr.source_uid(s)): s for s in our_srs(orthanc.client(), uid)}
    for dicom in images:
        report = by_source[_sop(dicom)]
        answer = gateway_answer(pacs_env, dicom)
        cxr = answer["cxr"]
        assert report.CompletionFlag == "PARTIAL" and report.VerificationFlag == "UNVERIFIED"
        assert "PRELIMINARY" in report.SeriesDescription
        assert report.StudyInstanceUID == uid  # filed under the image's own study
        groups = measurement_groups(report)
        classifier, fracture = groups["pneumonia classifier"], groups["fracture model"]
        (predicted,) = classifier.get_qualitative_evaluations()
        assert predicted.value.meaning.upper() == cxr["classification"]["predicted_class"]
        (probability,) = classifier.get_measurements()
        assert probability.value == pytest.approx(cxr["classification"]["probabilities"]["PNEUMONIA"], abs=1e-4)
        assert classifier.source_images[0].referenced_sop_instance_uid == _sop(dicom)
        models = {m["role"]: m for m in cxr["models"]}
        for group, role in ((classifier, "classifier"), (fracture, "fracture")):
            algorithm = texts_of(group[0])
            assert algorithm["Algorithm Name"] == models[role]["name"]
            assert algorithm["Algorithm Parameters"] == f"sha256={models[role]['sha256']}"
        (flag,) = fracture.get_qualitative_evaluations()
        expected_flag = sr.DESCRIBED if cxr["fracture"]["suspected"] else sr.NOT_DETECTED
        assert flag.value.value == expected_flag.value
        assert texts_of(fracture[0])["Fracture model text"] == cxr["fracture"]["text"]
        evaluations = next(i for i in report.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "C0034375")
        texts = texts_of(evaluations)
        assert texts["Preliminary report"] == answer["report"] and texts["Disclaimer"] == cxr["disclaimer"]


def test_running_it_again_stores_nothing_twice(first_run, study, orthanc, pacs_env):
    again = run_pacs(pacs_env, "analyze", "--study", study[0])
    assert again.returncode == 0, again.stderr
    assert sum(line.startswith("skipped") for line in again.stdout.splitlines()) == 2
    assert len(our_srs(orthanc.client(), study[0])) == 2


def test_a_wrong_password_is_a_clear_failure(study, pacs_env, tmp_path):
    wrong = tmp_path / "password"
    wrong.write_text("not-the-password")
    run = run_pacs({**pacs_env, "CXR_PACS_PASSWORD_FILE": str(wrong)}, "analyze", "--study", study[0])
    assert run.returncode != 0 and "401" in run.stdout + run.stderr
