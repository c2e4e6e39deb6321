"""Pass-through models reach their vLLM backend unchanged, streamed chunk by chunk."""

import openai
import pytest


@pytest.mark.parametrize("model", ["report-llm", "chexfract"])
def test_passthrough_chat(client, model):
    answer = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Say hello."}], max_tokens=8, temperature=0
    )
    assert answer.model == model
    assert answer.choices[0].message.content.strip()
    assert answer.usage.completion_tokens > 0  # vLLM's own usage block, relayed


def test_passthrough_streaming_is_relayed_chunk_by_chunk(client):
    stream = client.chat.completions.create(
        model="report-llm", messages=[{"role": "user", "content": "Count to five."}], max_tokens=16, stream=True
    )
    deltas = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert len(deltas) > 2


def test_upstream_4xx_is_relayed_with_its_status(client):
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(model="report-llm", messages=[{"role": "user", "content": "x"}], max_tokens=100_000)
    assert error.value.status_code == 400


def test_models_lists_every_route_with_its_clinical_label(client):
    models = {m.id: m for m in client.models.list()}
    assert set(models) == {"cxr-report", "chexfract", "report-llm", "pneumonia-classifier"}
    assert all(m.model_extra["clinical_use"] is False for m in models.values())
