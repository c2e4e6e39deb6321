"""`cxr-report` through the official openai SDK: sync, async, streaming, both languages, JSON mode."""

import json

import httpx
import openai
import pytest

from gateway.backends.calls import Sampling
from gateway.clinical.content import load
from gateway.pipeline.requests import fracture_call
from tests.conftest import data_uri
from tests.gateway.conftest import xray_message

PNEUMONIA = "person1946_bacteria_4874.jpeg"
NORMAL = "NORMAL2-IM-1430-0001.jpeg"
CLINICAL = load()


def cxr_of(completion) -> dict:
    return completion.model_extra["cxr"]


def fracture_direct(stack, image: bytes) -> str:
    """What the VLM itself answers for the request the pipeline sends it."""
    sampling = Sampling(max_tokens=24, temperature=0.0, top_p=0.9)  # as the session's gateway is configured
    payload = fracture_call(stack.roles["fracture"].served_name, CLINICAL.fracture_prompt, data_uri(image), sampling).body()
    answer = httpx.post(f"{stack.url('fracture')}/v1/chat/completions", json=payload, timeout=120).json()
    return answer["choices"][0]["message"]["content"]


@pytest.mark.parametrize("language", ["en", "zh"])
def test_sync_pipeline_merges_every_stage(client, stack, sample_images, language):
    image = sample_images[PNEUMONIA]
    completion = client.chat.completions.create(
        model="cxr-report", messages=xray_message(image), extra_body={"language": language}
    )
    cxr = cxr_of(completion)
    assert completion.choices[0].message.content.strip()
    assert cxr["status"] == "complete" and cxr["warnings"] == [] and cxr["language"] == language
    direct = httpx.post(f"{stack.url('classifier')}/classify", content=image, timeout=60).json()
    assert cxr["classification"]["predicted_class"] == direct["predicted_class"]
    assert cxr["classification"]["confidence"] == pytest.approx(direct["confidence"], abs=1e-4)
    assert cxr["fracture"]["text"] == fracture_direct(stack, image)
    assert cxr["risk_level"]["code"] == "high"  # PNEUMONIA at 0.9995 (seed rule table)
    assert cxr["risk_level"]["text"] == CLINICAL.rules.risk_level[0].text.get(language)
    assert cxr["disclaimer"].startswith(CLINICAL.text("disclaimer", language))
    assert CLINICAL.text("stand_in_notice", language) in cxr["disclaimer"]
    assert {m["role"] for m in cxr["models"]} == {"classifier", "fracture", "report"}
    assert all(m["clinical_use"] is False and m["sha256"] for m in cxr["models"])
    assert set(cxr["timings_ms"]) == {"classifier", "fracture", "report", "total"}


async def test_async_pipeline_with_metadata_language(async_client, sample_images):
    completion = await async_client.chat.completions.create(
        model="cxr-report", messages=xray_message(sample_images[NORMAL]), metadata={"language": "zh"}
    )
    cxr = cxr_of(completion)
    assert cxr["language"] == "zh"
    assert cxr["classification"]["predicted_class"] == "NORMAL"
    assert cxr["risk_level"]["code"] == "normal"  # NORMAL at 0.97


def test_streaming_pipeline_sends_findings_first_then_the_validated_report_and_cxr(client, sample_images):
    stream = client.chat.completions.create(model="cxr-report", messages=xray_message(sample_images[PNEUMONIA]), stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    # The report is schema-locked: its narrative goes out once validated, in one piece, never as raw JSON.
    assert [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content] == [text]
    assert text.startswith("## Chest X-ray preliminary report")
    final = chunks[-1]
    assert final.choices[0].finish_reason in ("stop", "length")
    assert final.model_extra["cxr"]["status"] == "complete"
    assert all("cxr" not in (c.model_extra or {}) for c in chunks[:-1])
    # The role chunk goes out at once; stage one's findings come next, before any report token.
    assert chunks[0].choices[0].delta.role == "assistant" and not chunks[0].choices[0].delta.content
    findings = chunks[1].model_extra["cxr_findings"]
    assert not chunks[1].choices[0].delta.content
    for key in ("classification", "fracture", "risk_level", "recommendations"):
        assert findings[key] == final.model_extra["cxr"][key]
    assert [i for i, c in enumerate(chunks) if "cxr_findings" in (c.model_extra or {})] == [1]


def test_json_mode_puts_the_merged_object_in_the_content(client, sample_images):
    completion = client.chat.completions.create(
        model="cxr-report", messages=xray_message(sample_images[NORMAL]), response_format={"type": "json_object"}
    )
    content = json.loads(completion.choices[0].message.content)
    assert content["classification"] == cxr_of(completion)["classification"]
    assert content["report"].strip()


def test_classifier_model_answers_json(client, stack, sample_images):
    completion = client.chat.completions.create(model="pneumonia-classifier", messages=xray_message(sample_images[NORMAL]))
    content = json.loads(completion.choices[0].message.content)
    direct = httpx.post(f"{stack.url('classifier')}/classify", content=sample_images[NORMAL], timeout=60).json()
    assert content["predicted_class"] == direct["predicted_class"]
    assert content["model"]["clinical_use"] is False


def test_classifier_model_streams_and_refuses_what_it_cannot_honour(client, sample_images):
    image = sample_images[NORMAL]
    whole = json.loads(
        client.chat.completions.create(model="pneumonia-classifier", messages=xray_message(image)).choices[0].message.content
    )
    chunks = list(
        client.chat.completions.create(
            model="pneumonia-classifier", messages=xray_message(image), stream=True, stream_options={"include_usage": True}
        )
    )
    streamed = json.loads("".join(c.choices[0].delta.content or "" for c in chunks if c.choices))
    assert streamed == whole  # the same answer, as the SDK reads a stream
    assert chunks[0].choices[0].delta.role == "assistant" and len({c.id for c in chunks}) == 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop" and chunks[-1].usage is not None
    for params, param in [({"n": 2}, "n"), ({"logprobs": True}, "logprobs"), ({"extra_body": {"best_of": 3}}, "best_of")]:
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model="pneumonia-classifier", messages=xray_message(image), **params)
        assert refused.value.body["param"] == param and "pneumonia-classifier" in refused.value.body["message"]


def test_analyze_upload_returns_the_merged_object(stack, sample_images):
    from tests.conftest import gateway_url

    response = httpx.post(
        f"{gateway_url(stack)}/v1/analyze",
        files={"file": ("x.jpeg", sample_images[PNEUMONIA])},
        data={"language": "en", "indication": "fever"},
        timeout=300,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["report"].strip() and body["cxr"]["classification"]["predicted_class"] == "PNEUMONIA"
