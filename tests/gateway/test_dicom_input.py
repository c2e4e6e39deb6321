"""DICOM Part 10 wherever an X-ray is accepted, against the real stack.

The same picture in any encoding classifies as the JPEG itself; the result names
the instance by UID; hostile DICOMs are refused naming why; and the identifiers
planted in every patient and study field reach no log and no answer.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys

import httpx
import numpy as np
import pytest
from pydicom import dcmread

from gateway.images import ImagePolicy, accept_image
from services.contract import images
from services.contract.dicom import DicomPolicy
from services.contract.paths import REPO_ROOT
from services.contract.roles import Role
from tests.conftest import SAMPLES, data_uri, gateway_url
from tests.dicom_files import SECRETS, VARIANTS, dicom_uri, from_jpeg, with_changes

JPEG = (SAMPLES / "person1946_bacteria_4874.jpeg").read_bytes()
# The DICOM's pixels are the JPEG's own, rendered losslessly to PNG: only float rounding may differ.
PROBABILITY_TOLERANCE = 1e-4


def chat(model: str, url: str, **extra) -> dict:
    content = [{"type": "image_url", "image_url": {"url": url}}]
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


@pytest.fixture(scope="module")
def gateway(stack) -> httpx.Client:
    return httpx.Client(base_url=gateway_url(stack), timeout=300)


def classify(gateway: httpx.Client, url: str) -> dict:
    response = gateway.post("/v1/chat/completions", json=chat("pneumonia-classifier", url))
    assert response.status_code == 200, response.text
    return json.loads(response.json()["choices"][0]["message"]["content"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_encoding_classifies_like_the_jpeg_itself(gateway, variant):
    expected = classify(gateway, data_uri(JPEG))
    got = classify(gateway, dicom_uri(from_jpeg(JPEG, variant)))
    assert got["predicted_class"] == expected["predicted_class"]
    for name, probability in expected["probabilities"].items():
        assert got["probabilities"][name] == pytest.approx(probability, abs=PROBABILITY_TOLERANCE)


def test_a_dicom_travels_decoded_beside_its_png_so_the_classifier_decodes_nothing_again():
    policy = ImagePolicy(20_000_000, 20_000_000, None, False, 1.0, DicomPolicy(max_pixels=20_000_000))
    dicom_xray = accept_image(from_jpeg(JPEG, "mono2-12bit-window"), "", policy, "messages")
    assert dicom_xray.mime == "image/png" and dicom_xray.pixels is not None
    assert np.array_equal(np.asarray(dicom_xray.pixels), np.asarray(images.decode(dicom_xray.image, 20_000_000)))
    assert accept_image(JPEG, "", policy, "messages").pixels is None  # a JPEG is decoded where it is used, once


def test_the_worker_classifies_a_dicom_body_like_the_jpeg(stack):
    worker = f"{stack.url(Role.CLASSIFIER)}/classify"
    from_jpeg_body = httpx.post(worker, content=JPEG, timeout=60).json()
    from_dicom_body = httpx.post(worker, content=from_jpeg(JPEG, "mono1"), timeout=60).json()
    assert from_dicom_body["predicted_class"] == from_jpeg_body["predicted_class"]
    assert from_dicom_body["confidence"] == pytest.approx(from_jpeg_body["confidence"], abs=PROBABILITY_TOLERANCE)
    refused = httpx.post(worker, content=from_jpeg(JPEG, "mono2-8bit", modality="CT"), timeout=60)
    assert refused.status_code == 400 and "modality CT" in refused.text


def test_the_pipeline_names_the_instance_it_analysed(gateway):
    dicom = from_jpeg(JPEG, "jpeg2000")
    answer = gateway.post("/v1/chat/completions", json=chat("cxr-report", dicom_uri(dicom), language="en"))
    assert answer.status_code == 200, answer.text
    source = answer.json()["cxr"]["source"]
    ds = dcmread(io.BytesIO(dicom))  # the file's own UIDs
    assert source == {
        "study_instance_uid": ds.StudyInstanceUID,
        "series_instance_uid": ds.SeriesInstanceUID,
        "sop_instance_uid": ds.SOPInstanceUID,
        "sop_class_uid": ds.SOPClassUID,
        "modality": "DX",
    }
    jpeg_answer = gateway.post("/v1/chat/completions", json=chat("cxr-report", data_uri(JPEG), language="en"))
    assert jpeg_answer.json()["cxr"]["source"] is None


def test_an_uploaded_dicom_is_analysed(gateway):
    dicom = from_jpeg(JPEG, "rle")
    answer = gateway.post("/v1/analyze", files={"file": ("xray.dcm", dicom, "application/dicom")}, data={"language": "en"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["cxr"]["source"]["modality"] == "DX"


@pytest.mark.parametrize(
    ("dicom", "reason"),
    [
        (lambda: from_jpeg(JPEG, "mono2-8bit", modality="CT"), "modality CT is not analysed"),
        (lambda: from_jpeg(JPEG, "mono2-8bit", body_part="HEAD"), "body part HEAD"),
        (lambda: with_changes(from_jpeg(JPEG, "mono2-8bit"), NumberOfFrames=2), "multi-frame"),
        (lambda: with_changes(from_jpeg(JPEG, "mono2-8bit"), PixelData=None), "no pixel data"),
        (lambda: with_changes(from_jpeg(JPEG, "mono2-8bit"), Rows=50000, Columns=50000), "the limit is"),
        (lambda: from_jpeg(JPEG, "jpeg2000")[:-60000], "truncated or malformed"),
        (lambda: from_jpeg(JPEG, "mono2-8bit")[:300_000], "truncated pixel data"),
    ],
    ids=["ct", "head", "multi-frame", "no-pixels", "pixel-bomb", "truncated-header", "truncated-pixels"],
)
def test_hostile_dicoms_get_a_400_naming_why_and_the_gateway_keeps_serving(gateway, dicom, reason):
    for model in ("cxr-report", "pneumonia-classifier"):
        response = gateway.post("/v1/chat/completions", json=chat(model, dicom_uri(dicom())))
        assert response.status_code == 400, response.text
        assert reason in response.json()["error"]["message"] and response.json()["error"]["param"] == "messages"
    upload = gateway.post("/v1/analyze", files={"file": ("x.dcm", dicom(), "application/dicom")})
    assert upload.status_code == 400 and reason in upload.json()["error"]["message"]
    assert gateway.get("/health").status_code == 200


def test_the_batch_cli_analyses_a_folder_of_dicom_files(stack, tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    for variant in ("mono1", "deflated"):
        (folder / f"{variant}.dcm").write_bytes(from_jpeg(JPEG, variant))
    out = tmp_path / "results.jsonl"
    run = subprocess.run(
        [sys.executable, "-m", "gateway", "analyze", "--url", gateway_url(stack), str(folder), "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO_ROOT,
    )
    assert run.returncode == 0, run.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["file"].rsplit("/", 1)[-1] for r in records) == ["deflated.dcm", "mono1.dcm"]
    assert all(r["ok"] and r["cxr"]["source"]["modality"] == "DX" for r in records)
    assert all(secret not in run.stdout + out.read_text() for secret in SECRETS)


def test_patient_identifiers_reach_no_log_and_no_answer(gateway, stack_log_dir, tmp_path_factory):
    dicom = from_jpeg(JPEG, "mono2-12bit-window")
    answers = [
        gateway.post("/v1/chat/completions", json=chat("cxr-report", dicom_uri(dicom), stream=True)).text,
        gateway.post("/v1/chat/completions", json=chat("pneumonia-classifier", dicom_uri(dicom))).text,
        gateway.post("/v1/analyze", files={"file": ("x.dcm", dicom, "application/dicom")}).text,
        gateway.post("/v1/chat/completions", json=chat("cxr-report", dicom_uri(with_changes(dicom, Modality="CT")))).text,
    ]
    for answer in answers:
        assert not [secret for secret in SECRETS if secret in answer]
    logs = sorted(tmp_path_factory.getbasetemp().rglob("*.log"))
    assert any(path.is_relative_to(stack_log_dir) for path in logs), "the stack's logs were not found"
    for path in logs:
        text = path.read_text(errors="replace")
        assert not [secret for secret in SECRETS if secret in text], f"an identifier reached {path.name}"


def test_the_accepted_modalities_and_body_parts_are_settings(start_gateway):
    gateway = httpx.Client(base_url=start_gateway(GATEWAY_DICOM_MODALITIES="dx", GATEWAY_DICOM_BODY_PARTS="").url, timeout=60)
    head = classify(gateway, dicom_uri(from_jpeg(JPEG, "mono2-8bit", body_part="HEAD")))  # any body part now
    assert head["predicted_class"]
    refused = gateway.post(
        "/v1/chat/completions", json=chat("pneumonia-classifier", dicom_uri(from_jpeg(JPEG, "mono1", modality="CR")))
    )
    assert refused.status_code == 400 and "modality CR is not analysed; accepted: DX" in refused.json()["error"]["message"]
