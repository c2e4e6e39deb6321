"""A streamed cxr-report when a backend is saturated, failing, or dies mid-stream.

Admission and image checks come before the first byte and keep their own status
(429 + Retry-After, 400); then the headers and a first chunk go out at once. After
that the stream still ends properly: a failed classifier gives an error event; a
failed report gives the final chunk with `cxr` (partial, the report stage named,
finish_reason "error"), then an error event; both end with [DONE]. Never a cut stream.
"""

import json
import re
import time

import httpx
import openai
import pytest

from tests.conftest import data_uri, free_port
from tests.proxy import CuttableProxy


def stream_body(image: bytes) -> dict:
    return {
        "model": "cxr-report",
        "stream": True,
        "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_uri(image)}}]}],
    }


def sse_payloads(lines: list[str]) -> list[str]:
    return [line[len("data: ") :] for line in lines if line.startswith("data: ")]


def assert_ends_with_partial_cxr_error_and_done(payloads: list[str]) -> dict:
    assert payloads[-1] == "[DONE]"
    error = json.loads(payloads[-2])["error"]
    assert "report backend" in error["message"] and error["code"] == "backend_unavailable"
    final = json.loads(payloads[-3])
    assert final["choices"][0]["finish_reason"] == "error"  # the report died: said so, never "stop"
    cxr = final["cxr"]
    assert cxr["status"] == "partial" and cxr["report_available"] is False
    assert [w["stage"] for w in cxr["warnings"]] == ["report"]
    assert cxr["classification"]["predicted_class"] and cxr["fracture"] is not None  # what is known is kept
    return cxr


@pytest.fixture(scope="module")
def xray(sample_images) -> bytes:
    return sample_images["person1946_bacteria_4874.jpeg"]


def report_running(stack) -> bool:
    metrics = httpx.get(f"{stack.url('report')}/metrics", timeout=10).text
    running = re.findall(r"^vllm:num_requests_running\{[^}]*\} (\S+)$", metrics, re.MULTILINE)
    return sum(float(value) for value in running) >= 1


def until_the_report_is_written(stack, lines) -> list[str]:
    """Read a stream's first chunk (stage one's findings), then wait until the report model is generating."""
    read = []
    for line in lines:
        read.append(line)
        if "cxr_findings" in line:
            break
    deadline = time.monotonic() + 30
    while not report_running(stack):
        assert time.monotonic() < deadline, f"the report model never started: {read}"
        time.sleep(0.1)
    return read


def test_saturated_report_backend_is_429_before_the_first_byte(start_gateway, stack, xray):
    gateway = start_gateway(GATEWAY_REPORT_MAX_CONCURRENCY="1")
    client = httpx.Client(base_url=gateway.url, timeout=300)
    with client, client.stream("POST", "/v1/chat/completions", json=stream_body(xray)) as holding:
        assert holding.status_code == 200
        lines = holding.iter_lines()  # kept referenced: a dropped iterator closes the connection
        until_the_report_is_written(stack, lines)  # the first request holds the report slot while it streams
        refused = client.post("/v1/chat/completions", json=stream_body(xray))
    assert refused.status_code == 429, refused.text
    assert refused.headers["retry-after"] == "1" and refused.headers["content-type"] == "application/json"
    assert refused.json()["error"]["type"] == "rate_limit_error" and "report backend" in refused.json()["error"]["message"]


def test_a_failed_classifier_after_the_headers_ends_the_stream_with_an_error_event(start_gateway, xray):
    gateway = start_gateway(GATEWAY_CLASSIFIER_URL=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=stream_body(xray), timeout=300) as response:
        assert response.status_code == 200  # the headers went out before any backend was called
        payloads = sse_payloads(list(response.iter_lines()))
    assert json.loads(payloads[0])["choices"][0]["delta"]["role"] == "assistant"
    error = json.loads(payloads[-2])["error"]
    assert "classifier backend failed" in error["message"] and payloads[-1] == "[DONE]"
    assert not any("cxr" in json.loads(p) for p in payloads[:-1])  # nothing was made up


def test_a_bad_image_is_still_a_400_before_the_stream_starts(stack, xray):
    body = stream_body(xray[: len(xray) // 8])
    body["messages"][0]["content"][0]["image_url"]["url"] = "data:image/jpeg;base64,!!notbase64"
    response = httpx.post(f"http://127.0.0.1:{stack.gateway.port}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_image"


def test_unreachable_report_backend_ends_the_stream_with_an_error_event(start_gateway, xray):
    gateway = start_gateway(GATEWAY_REPORT_URL=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=stream_body(xray), timeout=300) as response:
        assert response.status_code == 200
        payloads = sse_payloads(list(response.iter_lines()))
    assert_ends_with_partial_cxr_error_and_done(payloads)
    sdk = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0, timeout=300)
    received = []
    with pytest.raises(openai.APIError, match="report backend"):  # the SDK raises on the error event...
        for chunk in sdk.chat.completions.create(**stream_body(xray)):
            received.append(chunk)
    assert received[-1].model_extra["cxr"]["status"] == "partial"  # ...after it got the partial result


def test_report_backend_dying_mid_stream_ends_the_stream_with_an_error_event(start_gateway, stack, xray):
    proxy = CuttableProxy(free_port(), stack.roles["report"].port)
    try:
        gateway = start_gateway(GATEWAY_REPORT_URL=proxy.url)
        with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=stream_body(xray), timeout=300) as response:
            lines = response.iter_lines()
            received = until_the_report_is_written(stack, lines)
            proxy.cut()  # the report backend's host goes away mid-stream
            received += list(lines)
        payloads = sse_payloads(received)
        cxr = assert_ends_with_partial_cxr_error_and_done(payloads)
        assert "broke off" in cxr["warnings"][0]["message"] or "unreachable" in cxr["warnings"][0]["message"]
        assert httpx.get(f"{gateway.url}/health").status_code == 200  # still serving
    finally:
        proxy.close()


def test_sse_comments_keep_the_stream_alive_while_the_report_is_written(start_gateway, xray):
    gateway = start_gateway(GATEWAY_STREAM_KEEPALIVE_S="0.5")
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=stream_body(xray), timeout=300) as response:
        lines = [line for line in response.iter_lines() if line]
    first_data = next(i for i, line in enumerate(lines) if line.startswith("data: "))
    findings = next(i for i, line in enumerate(lines) if "cxr_findings" in line)
    report = next(i for i, line in enumerate(lines) if '"content":"## ' in line)
    assert '"role":"assistant"' in lines[first_data] and first_data < findings  # headers and a chunk at once
    assert ": keep-alive" in lines[findings + 1 : report]  # bytes on the wire while the report is written
    sdk = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0, timeout=300)
    chunks = list(sdk.chat.completions.create(**stream_body(xray)))  # the SDK skips the comments
    assert chunks[-1].model_extra["cxr"]["status"] == "complete"
