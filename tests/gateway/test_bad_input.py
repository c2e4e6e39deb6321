"""Hostile requests to the gateway: each gets its status and an OpenAI error body; the gateway keeps serving."""

import base64

import httpx
import pytest

from tests import images
from tests.conftest import data_uri, gateway_url
from tests.gateway.conftest import xray_message


@pytest.fixture(scope="module")
def http(stack):
    with httpx.Client(base_url=gateway_url(stack), timeout=120) as c:
        yield c


def chat(http, messages, model="cxr-report", **extra):
    return http.post("/v1/chat/completions", json={"model": model, "messages": messages, **extra})


def assert_openai_error(response, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert fragment in error["message"], error["message"]


def with_url(url: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]


def test_no_image(http):
    assert_openai_error(chat(http, [{"role": "user", "content": "hello"}]), 400, "exactly one image, found 0")


def test_two_images(http, sample_images):
    image = next(iter(sample_images.values()))
    two = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_uri(image)}}] * 2}]
    assert_openai_error(chat(http, two), 400, "exactly one image, found 2")


def test_non_image_data_uri(http):
    url = "data:image/png;base64," + base64.b64encode(b"definitely not a png").decode()
    assert_openai_error(chat(http, with_url(url)), 400, "not a JPEG or PNG")


def test_bad_base64(http):
    assert_openai_error(chat(http, with_url("data:image/jpeg;base64,@@@not-base64@@@")), 400, "not valid base64")


def test_wrong_mime_and_remote_and_file_urls(http):
    assert_openai_error(chat(http, with_url("data:text/plain;base64,aGk=")), 400, "data:image/png or data:application/dicom")
    assert_openai_error(chat(http, with_url("https://example.org/x.jpeg")), 400, "http(s) image URLs are disabled")
    assert_openai_error(chat(http, with_url("file:///etc/passwd")), 400, "file:// image URLs are disabled")


def test_too_many_pixels(http):
    bomb = images.decompression_bomb()
    assert_openai_error(chat(http, xray_message(bomb, mime="image/png")), 400, "the limit is")


def test_a_thumbnail_is_not_a_chest_xray(http, sample_images):
    tiny = images.thumbnail(sample_images["person1946_bacteria_4874.jpeg"])
    assert_openai_error(chat(http, xray_message(tiny, mime="image/png")), 400, "at least 64 pixels a side")


def test_truncated_jpeg_is_refused_by_the_classifier_and_relayed(http, sample_images):
    broken = images.truncated(next(iter(sample_images.values())))
    response = chat(http, xray_message(broken))
    assert response.status_code == 400
    assert "truncated" in response.json()["error"]["message"]


def test_oversize_body(http):
    response = http.post(
        "/v1/chat/completions", content=b"{" + b" " * (33 * 1024 * 1024) + b"}", headers={"content-type": "application/json"}
    )
    assert_openai_error(response, 413, "exceeds the limit")


def test_unknown_model(http):
    assert_openai_error(chat(http, [{"role": "user", "content": "x"}], model="gpt-4o"), 404, "does not exist")
    assert chat(http, [{"role": "user", "content": "x"}], model="gpt-4o").json()["error"]["code"] == "model_not_found"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"not json", "invalid request"),
        (b'{"messages": []}', "model"),
        (b'{"model": "cxr-report", "messages": "hi"}', "messages"),
        (b'{"model": 5, "messages": [{"role": "user", "content": "x"}]}', "model"),
        (b"[1, 2, 3]", "invalid request"),
    ],
)
def test_malformed_json_and_wrong_types(http, body, fragment):
    response = http.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert_openai_error(response, 400, fragment)


def test_unknown_language(http, sample_images):
    response = chat(http, xray_message(next(iter(sample_images.values()))), language="fr")
    assert response.status_code == 400


def test_huge_headers_are_431_before_any_key_is_compared(http):
    response = http.get("/v1/models", headers={"Authorization": "Bearer " + "k" * 1_000_000})
    assert_openai_error(response, 431, "exceed the limit of 16384 bytes")
    assert response.json()["error"]["code"] == "headers_too_large" and response.headers["x-request-id"]
    many = {f"x-filler-{i}": "v" * 100 for i in range(200)}  # small headers, many of them
    assert_openai_error(http.get("/health", headers=many), 431, "request headers of")


def test_analyze_without_a_file(http):
    assert_openai_error(http.post("/v1/analyze", files={"other": ("x", b"1")}), 400, "'file'")
    assert_openai_error(http.post("/v1/analyze", content=b"raw"), 400, "multipart/form-data")


def test_gateway_still_serves(http):
    assert http.get("/health").status_code == 200
    assert http.get("/ready").json()["ready"] is True
