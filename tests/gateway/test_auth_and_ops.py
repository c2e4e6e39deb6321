"""API keys, readiness, metrics, request ids and what the logs may never contain."""

import json
import re
import time
import uuid
from pathlib import Path

import httpx
import openai
import pytest

from services.contract.version import VERSION
from tests.conftest import gateway_url
from tests.gateway.conftest import xray_message

KEY = "test-key-0123456789abcdef"


@pytest.fixture(scope="module")
def keyed_gateway(start_gateway):
    return start_gateway(GATEWAY_API_KEYS=f"{KEY},second-key-0123456789")


def test_missing_and_wrong_keys_are_401_in_openai_shape(keyed_gateway):
    for headers in ({}, {"Authorization": "Bearer wrong-key-0123456789abcd"}, {"Authorization": "Basic x"}):
        response = httpx.get(f"{keyed_gateway.url}/v1/models", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"


def test_a_valid_key_works_with_the_sdk_and_health_needs_none(keyed_gateway):
    client = openai.OpenAI(base_url=f"{keyed_gateway.url}/v1", api_key=KEY, max_retries=0)
    assert {m.id for m in client.models.list()} >= {"cxr-report"}
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{keyed_gateway.url}/v1", api_key="nope-nope-nope-nope", max_retries=0).models.list()
    assert httpx.get(f"{keyed_gateway.url}/health").status_code == 200
    assert httpx.get(f"{keyed_gateway.url}/ready").status_code == 200


def test_short_keys_are_refused_at_start_up(start_gateway):
    with pytest.raises(RuntimeError, match="at least 16 characters"):
        start_gateway(GATEWAY_API_KEYS="short")


def test_ready_reports_every_backend(stack):
    body = httpx.get(f"{gateway_url(stack)}/ready").json()
    assert body["ready"] is True
    assert set(body["backends"]) == {"classifier", "fracture", "report"}
    # A real token or tensor just now, or real traffic served within the freshness window.
    proof = re.compile(r"ready \((a one-(token|tensor) probe answered|served a request [0-9.]+ s ago)\)")
    assert all(proof.fullmatch(b["detail"]) for b in body["backends"].values()), body


def _logged(log: Path, **match: str) -> list[dict]:
    """The JSON log lines of `log` whose fields equal `match`, waited for briefly (a line follows its answer)."""
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        found = [line for line in lines if all(line.get(k) == v for k, v in match.items())]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_each_backend_call_has_its_own_id_listed_on_the_gateways_log_line(stack, stack_log_dir, sample_images):
    client = openai.OpenAI(base_url=f"{gateway_url(stack)}/v1", api_key="x", max_retries=0, timeout=300)
    traced = f"his-trace-{uuid.uuid4().hex[:8]}"
    messages = xray_message(next(iter(sample_images.values())))
    client.chat.completions.create(model="cxr-report", messages=messages, extra_headers={"X-Request-ID": traced})
    (line,) = _logged(stack_log_dir / "gateway.log", request_id=traced, msg="request")
    calls = dict(call.split(":", 1) for call in line["backend_calls"])
    assert set(calls) == {"classifier", "fracture", "report"}, line["backend_calls"]
    assert all(uuid.UUID(call_id).version == 4 for call_id in calls.values())  # what llama.cpp's server requires
    # The classifier worker logs the id its call was given, never the client's.
    assert _logged(stack_log_dir / "classifier.log", request_id=calls["classifier"])
    assert not _logged(stack_log_dir / "classifier.log", request_id=traced)


def test_request_id_is_echoed_and_metrics_count_by_model(stack, sample_images):
    url = gateway_url(stack)
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=300)
    client.chat.completions.create(model="cxr-report", messages=xray_message(next(iter(sample_images.values()))))
    response = httpx.get(f"{url}/v1/models", headers={"X-Request-ID": "his-req-42"})
    assert response.headers["x-request-id"] == "his-req-42"
    assert {card["served_by"] for card in response.json()["data"]} == {f"cxr-serve {VERSION}"}  # one release, everywhere
    assert httpx.get(f"{url}/v1/models").headers["x-request-id"]  # generated when absent
    metrics = httpx.get(f"{url}/metrics").text
    assert 'gateway_requests_total{model="/v1/models",status="200"}' in metrics
    assert "gateway_backend_in_flight" in metrics
    assert 'gateway_stage_seconds_count{stage="classifier"}' in metrics
    assert 'gateway_pipeline_results_total{status="complete"}' in metrics
    assert re.search(r'gateway_classifier_predictions_total\{predicted_class="(NORMAL|PNEUMONIA)"\} [1-9]', metrics)
    assert re.search(r"gateway_classifier_confidence_count [1-9]", metrics)


def test_logs_carry_ids_and_timings_but_never_content(keyed_gateway, sample_images):
    secret_indication = "Patient John Q. Sample, MRN 998877, fever"
    client = openai.OpenAI(base_url=f"{keyed_gateway.url}/v1", api_key=KEY, max_retries=0, timeout=300)
    completion = client.chat.completions.with_raw_response.create(
        model="cxr-report",
        messages=xray_message(next(iter(sample_images.values())), text=secret_indication),
        extra_headers={"X-Request-ID": "log-check-1"},
    )
    report = completion.parse().choices[0].message.content
    deadline = time.monotonic() + 10  # the request line is written just after the response is sent
    while '"request_id": "log-check-1"' not in keyed_gateway.log_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    log = keyed_gateway.log_text()
    assert '"request_id": "log-check-1"' in log and '"latency_ms"' in log
    assert "MRN 998877" not in log and "John Q." not in log
    assert report[:40] not in log
    assert "base64" not in log and "/9j/" not in log  # no image bytes


def test_file_urls_only_under_the_configured_folder(start_gateway, tmp_path):
    from tests.conftest import SAMPLES

    gateway = start_gateway(GATEWAY_IMAGE_FOLDER=str(SAMPLES))
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0, timeout=300)

    def classify(url: str):
        return client.chat.completions.create(
            model="pneumonia-classifier",
            messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}],
        )

    inside = classify(f"file://{SAMPLES / 'person1946_bacteria_4874.jpeg'}")
    assert '"predicted_class": "PNEUMONIA"' in inside.choices[0].message.content
    outside = tmp_path / "x.jpeg"
    outside.write_bytes((SAMPLES / "person1946_bacteria_4874.jpeg").read_bytes())
    for url in (f"file://{outside}", f"file://{SAMPLES}/../samples/../../etc/passwd"):
        with pytest.raises(openai.BadRequestError, match="outside the allowed image folder"):
            classify(url)
