"""A clinical indication too long for the report model's context is refused up front, counted by its own tokenizer.

Chinese costs SmolLM2's tokenizer 2-3 tokens a character, so a character limit
could not be honest in both languages; the report server's /tokenize counts.
"""

import httpx
import openai
import pytest

from tests.conftest import gateway_url
from tests.gateway.conftest import xray_message

LIMIT = 256  # GATEWAY_MAX_INDICATION_TOKENS' default
CHINESE = "患者咳嗽发热三天伴右侧胸痛呼吸困难既往体健无吸烟史"


def tokens(stack, text: str) -> int:
    body = {"model": stack.roles["report"].served_name, "prompt": text, "add_special_tokens": False}
    return httpx.post(f"{stack.url('report')}/tokenize", json=body, timeout=30).json()["count"]


def indication_of(stack, at_most: int | None = None, more_than: int | None = None) -> str:
    """Chinese text whose token count is just within `at_most`, or just over `more_than`."""
    text = ""
    while True:
        longer = text + CHINESE[len(text) % len(CHINESE)]
        count = tokens(stack, longer)
        if at_most is not None and count > at_most:
            return text
        text = longer
        if more_than is not None and count > more_than:
            return text


@pytest.fixture(scope="module")
def client(stack):
    return openai.OpenAI(base_url=f"{gateway_url(stack)}/v1", api_key="x", max_retries=0, timeout=600)


def test_an_indication_over_the_limit_is_a_400_naming_it_streamed_or_not(client, stack, sample_images):
    text = indication_of(stack, more_than=LIMIT)
    messages = xray_message(sample_images["NORMAL2-IM-1427-0001.jpeg"], text=text)
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model="cxr-report", messages=messages, stream=stream)
        assert refused.value.body["code"] == "context_length_exceeded"
        counted = tokens(stack, text)
        assert counted > LIMIT
        assert f"is {counted} tokens for the report model; at most {LIMIT} tokens" in refused.value.body["message"]
    essay = xray_message(sample_images["NORMAL2-IM-1427-0001.jpeg"], text="x " * 50_000)
    with pytest.raises(openai.BadRequestError, match="100000 characters"):
        client.chat.completions.create(model="cxr-report", messages=essay)


def test_the_longest_indication_allowed_fits_the_context_in_chinese(client, stack, sample_images):
    text = indication_of(stack, at_most=LIMIT)
    assert tokens(stack, text) <= LIMIT and len(text) < LIMIT  # Chinese: fewer characters than tokens
    completion = client.chat.completions.create(
        model="cxr-report",
        messages=xray_message(sample_images["person1946_bacteria_4874.jpeg"], text=text),
        extra_body={"language": "zh"},
    )
    cxr = completion.model_extra["cxr"]
    assert cxr["status"] == "complete", cxr["warnings"]  # no context-length failure in the report stage


def test_analyze_refuses_an_indication_over_the_limit(stack, sample_images):
    response = httpx.post(
        f"{gateway_url(stack)}/v1/analyze",
        files={"file": ("x.jpeg", sample_images["NORMAL2-IM-1427-0001.jpeg"], "image/jpeg")},
        data={"indication": indication_of(stack, more_than=LIMIT)},
        timeout=120,
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "context_length_exceeded"
