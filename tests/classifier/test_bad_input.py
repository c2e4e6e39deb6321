"""Hostile input to the worker: each gets a clear 4xx with a reason, and the worker keeps serving."""

import httpx
import numpy as np
import pytest

from tests import images


@pytest.fixture(scope="module")
def client(classifier_url):
    with httpx.Client(base_url=classifier_url, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def xray(sample_images):
    return sample_images["person1946_bacteria_4874.jpeg"]


REFUSED = [
    ("not an image", lambda x: b"this is not an image at all", 400, "not a JPEG or PNG"),
    ("empty body", lambda x: b"", 400, "empty image"),
    ("truncated JPEG", images.truncated, 400, "truncated"),
    ("decompression bomb", lambda x: images.decompression_bomb(), 400, "pixels; the limit is"),
    ("GIF (format not accepted)", images.gif, 400, "not a JPEG or PNG"),
    ("48x48 thumbnail", images.thumbnail, 400, "at least 64 pixels a side"),
]


@pytest.mark.parametrize(("case", "make", "status", "reason"), REFUSED, ids=[r[0] for r in REFUSED])
def test_bad_images_are_refused_with_a_reason(client, xray, case, make, status, reason):
    response = client.post("/classify", content=make(xray))
    assert response.status_code == status, case
    assert reason in response.json()["error"]


CONVERTED = [
    ("16-bit grey PNG", images.sixteen_bit),
    ("grayscale PNG", images.grayscale),
    ("RGBA PNG", images.rgba),
    ("palette PNG", images.palette),
]


@pytest.mark.parametrize(("case", "make"), CONVERTED, ids=[c[0] for c in CONVERTED])
def test_unusual_pixel_formats_are_converted_not_crashed(client, xray, case, make):
    response = client.post("/classify", content=make(xray))
    assert response.status_code == 200, (case, response.text)
    assert response.json()["predicted_class"] in ("NORMAL", "PNEUMONIA")


def test_grayscale_png_classifies_like_the_original(client, xray):
    original = client.post("/classify", content=xray).json()["probabilities"]
    grey = client.post("/classify", content=images.grayscale(xray)).json()["probabilities"]
    # The sample JPEG is single-channel: converting to L loses nothing, so the answer is the same.
    assert np.allclose(list(original.values()), list(grey.values()), atol=1e-5)


def test_multipart_upload_and_a_missing_file_field(client, xray):
    assert client.post("/classify", files={"file": ("x.jpeg", xray)}).status_code == 200
    response = client.post("/classify", files={"other": ("x.jpeg", xray)})
    assert response.status_code == 400
    assert "'file'" in response.json()["error"]


def test_oversize_body_is_413(client):
    response = client.post("/classify", content=b"\0" * (33 * 1024 * 1024))
    assert response.status_code == 413
    assert "exceeds the limit" in response.json()["error"]


def test_chunked_oversize_body_is_413_not_500(client):
    def chunks():
        for _ in range(40):
            yield b"\0" * (1024 * 1024)

    response = client.post("/classify", content=chunks())
    assert response.status_code == 413


def test_huge_headers_are_431_in_the_protocol_shape(client):
    response = client.get("/v2/health/live", headers={"Authorization": "Bearer " + "k" * 100_000})
    assert response.status_code == 431 and "exceed the limit of 16384 bytes" in response.json()["error"]


def test_worker_still_serves_after_all_that(client, xray):
    assert client.post("/classify", content=xray).status_code == 200
    assert client.get("/v2/health/ready").json()["ready"] is True
