"""Backend faults: a real network cut between the gateway and one backend, then its restoration."""

import json
import re

import httpx
import openai
import pytest

from tests.conftest import free_port
from tests.gateway.conftest import xray_message
from tests.proxy import CuttableProxy
from tests.waiting import wait_until


@pytest.fixture(scope="module")
def proxies(stack):
    made = {role: CuttableProxy(free_port(), stack.roles[role].port) for role in ("fracture", "report", "classifier")}
    yield made
    for proxy in made.values():
        proxy.close()


@pytest.fixture(scope="module")
def faulty_gateway(start_gateway, proxies):
    return start_gateway(
        GATEWAY_FRACTURE_URL=proxies["fracture"].url,
        GATEWAY_REPORT_URL=proxies["report"].url,
        GATEWAY_CLASSIFIER_URL=proxies["classifier"].url,
    )


@pytest.fixture(scope="module")
def faulty(faulty_gateway):
    return openai.OpenAI(base_url=f"{faulty_gateway.url}/v1", api_key="x", max_retries=0, timeout=300)


def log_lines(gateway) -> list[dict]:
    return [json.loads(line) for line in gateway.log_text().splitlines() if line.startswith("{")]


def request_lines(gateway) -> list[dict]:
    return [line for line in log_lines(gateway) if line.get("msg") == "request"]


@pytest.fixture(scope="module")
def xray(sample_images):
    return sample_images["person1946_bacteria_4874.jpeg"]


def pipeline(client, xray):
    return client.chat.completions.create(model="cxr-report", messages=xray_message(xray)).model_extra["cxr"]


def test_vlm_down_gives_partial_with_a_warning_then_recovers(faulty, faulty_gateway, proxies, xray):
    proxies["fracture"].cut()
    try:
        logged_before = len(request_lines(faulty_gateway))
        cxr = pipeline(faulty, xray)
        # The request line is written once the answer has gone out, so it may follow the answer by a moment.
        wait_until(lambda: len(request_lines(faulty_gateway)) > logged_before, 10, "the request logged")
        last = request_lines(faulty_gateway)[-1]
        assert last["outcome"] == "partial" and last["failed_stages"] == ["fracture"]  # logged, by stage name only
        assert cxr["status"] == "partial"
        assert cxr["fracture"] is None  # never invented
        assert [w["stage"] for w in cxr["warnings"]] == ["fracture"]
        assert "fracture backend failed" in cxr["warnings"][0]["message"]
        assert cxr["classification"]["predicted_class"] == "PNEUMONIA"
        assert cxr["report_available"] is True
    finally:
        proxies["fracture"].restore()
    cxr = pipeline(faulty, xray)
    assert cxr["status"] == "complete" and cxr["warnings"] == []


def test_report_llm_down_gives_partial_without_a_report(faulty, proxies, xray):
    proxies["report"].cut()
    try:
        completion = faulty.chat.completions.create(model="cxr-report", messages=xray_message(xray))
        cxr = completion.model_extra["cxr"]
        assert cxr["status"] == "partial" and cxr["report_available"] is False
        assert [w["stage"] for w in cxr["warnings"]] == ["report"]
        assert "unavailable" in completion.choices[0].message.content.lower()
        assert cxr["fracture"] is not None
        metrics = httpx.get(str(faulty.base_url).removesuffix("/v1/") + "/metrics").text
        assert re.search(r'gateway_upstream_errors_total\{backend="report",kind="unreachable"\} [1-9]', metrics)
    finally:
        proxies["report"].restore()


def test_classifier_down_is_503_naming_it(faulty, faulty_gateway, proxies, xray):
    proxies["classifier"].cut()
    try:
        with pytest.raises(openai.APIStatusError) as error:
            pipeline(faulty, xray)
        assert error.value.status_code == 503
        assert "classifier backend failed" in error.value.body["message"]
        failed = [line for line in log_lines(faulty_gateway) if line.get("msg") == "request failed"][-1]
        assert failed["backend"] == "classifier" and failed["kind"] == "unreachable" and failed["request_id"]
    finally:
        proxies["classifier"].restore()
    assert pipeline(faulty, xray)["status"] == "complete"


def test_passthrough_to_a_down_backend_is_503(faulty, proxies):
    proxies["report"].cut()
    try:
        with pytest.raises(openai.APIStatusError) as error:
            faulty.chat.completions.create(model="report-llm", messages=[{"role": "user", "content": "x"}], max_tokens=4)
        assert error.value.status_code == 503
    finally:
        proxies["report"].restore()


def test_saturated_backend_is_429_with_retry_after(start_gateway, sample_images):
    import asyncio

    import httpx

    from tests.conftest import data_uri

    gateway = start_gateway(GATEWAY_FRACTURE_MAX_CONCURRENCY="1")
    body = {
        "model": "chexfract",
        "max_tokens": 16,
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": data_uri(next(iter(sample_images.values())))}}],
            }
        ],
    }

    async def burst():
        async with httpx.AsyncClient(base_url=gateway.url, timeout=300) as client:
            return await asyncio.gather(*(client.post("/v1/chat/completions", json=body) for _ in range(4)))

    responses = asyncio.run(burst())
    statuses = sorted(r.status_code for r in responses)
    assert statuses[0] == 200 and 429 in statuses
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["type"] == "rate_limit_error"
