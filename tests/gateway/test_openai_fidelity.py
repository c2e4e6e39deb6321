"""cxr-report as the OpenAI API defines it: usage, finish_reason, budgets, sampling, refusals, error shapes, OpenAPI."""

import httpx
import openai
import pytest

from services.contract.version import VERSION
from tests.conftest import gateway_url
from tests.gateway.conftest import xray_message

NORMAL = "NORMAL2-IM-1430-0001.jpeg"


def report(client, image: bytes, **params):
    return client.chat.completions.create(model="cxr-report", messages=xray_message(image), **params)


def test_budget_finish_reason_and_usage_are_the_backends(client, sample_images):
    completion = report(client, sample_images[NORMAL], max_completion_tokens=12)
    usage = completion.usage
    assert completion.choices[0].finish_reason == "length"  # the report hit its 12-token budget
    fracture_tokens = usage.completion_tokens - 12
    assert 0 < fracture_tokens <= 24  # ChexFract's answer (24-token budget in the test stack) plus the report's 12
    assert usage.prompt_tokens > 300 and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_seed_and_temperature_reach_the_report_model(client, sample_images):
    image = sample_images[NORMAL]
    sampled = [report(client, image, temperature=1.5, seed=7).model_extra["cxr"]["structured_report"] for _ in range(2)]
    greedy = report(client, image).model_extra["cxr"]["structured_report"]
    assert sampled[0] is not None and greedy is not None  # within the schema either way
    assert sampled[0] == sampled[1]  # the same seed gives the same sample
    assert sampled[0] != greedy  # and it is a sample, not the greedy default


def test_stream_options_include_usage_gives_the_usage_chunk(client, sample_images):
    chunks = list(report(client, sample_images[NORMAL], stream=True, stream_options={"include_usage": True}))
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert chunks[-2].choices[0].finish_reason == "stop" and chunks[-2].model_extra["cxr"]["status"] == "complete"


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"n": 2}, "n"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
        ({"logprobs": True}, "logprobs"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}}, "response_format"),
        ({"extra_body": {"best_of": 3}}, "best_of"),
        ({"max_completion_tokens": 100_000}, "max_completion_tokens"),
    ],
)
def test_parameters_the_pipeline_cannot_honour_are_refused_by_name(client, sample_images, params, param):
    with pytest.raises(openai.BadRequestError) as refused:
        report(client, sample_images[NORMAL], **params)
    assert refused.value.body["param"] == param and refused.value.body["type"] == "invalid_request_error"


@pytest.mark.parametrize(("method", "path", "status"), [("GET", "/v1/nothing", 404), ("GET", "/v1/chat/completions", 405)])
def test_router_errors_are_openai_error_objects(stack, method, path, status):
    response = httpx.request(method, gateway_url(stack) + path)
    assert response.status_code == status
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_openapi_describes_the_chat_and_upload_bodies(stack):
    document = httpx.get(f"{gateway_url(stack)}/openapi.json").json()
    assert document["info"]["version"] == VERSION  # pyproject.toml's, the one version
    assert {"/v1/reviews", "/v1/reviews/{study}/{series}/{sop}"} <= set(document["paths"])
    chat = document["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert chat["$ref"] == "#/components/schemas/ChatRequest"
    assert {"model", "messages", "max_completion_tokens"} <= set(document["components"]["schemas"]["ChatRequest"]["properties"])
    upload = document["paths"]["/v1/analyze"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert upload["properties"]["file"] == {"type": "string", "format": "binary", "description": "the chest X-ray, JPEG or PNG"}
