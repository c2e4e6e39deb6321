"""The real vLLM servers of the cpu profile, through the official openai SDK."""

import openai
import pytest

from tests.conftest import data_uri

pytestmark = pytest.mark.usefixtures("stack")


@pytest.fixture(scope="module")
def clients(stack):
    def client(role: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{stack.url(role)}/v1", api_key="unused", max_retries=0, timeout=120)

    return {"report": client("report"), "fracture": client("fracture")}


def test_report_llm_answers_a_text_chat(clients, stack):
    answer = clients["report"].chat.completions.create(
        model=stack.roles["report"].served_name,
        messages=[{"role": "user", "content": "Write one sentence about chest X-rays."}],
        max_tokens=16,
        temperature=0,
    )
    assert answer.choices[0].message.content.strip()
    assert answer.usage.completion_tokens > 0


def test_report_llm_streams(clients, stack):
    stream = clients["report"].chat.completions.create(
        model=stack.roles["report"].served_name,
        messages=[{"role": "user", "content": "Count from one to five."}],
        max_tokens=16,
        temperature=0,
        stream=True,
    )
    deltas = [chunk.choices[0].delta.content for chunk in stream if chunk.choices and chunk.choices[0].delta.content]
    assert len(deltas) > 1  # several chunks, not one buffered answer
    assert "".join(deltas).strip()


def test_fracture_vlm_takes_an_image_url_data_uri(clients, stack, sample_images):
    image = next(iter(sample_images.values()))
    model = stack.roles["fracture"].served_name
    text_only = clients["fracture"].chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Describe any fractures."}], max_tokens=8, temperature=0
    )
    with_image = clients["fracture"].chat.completions.create(
        model=model,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": data_uri(image)}},
                    {"type": "text", "text": "Describe any fractures."},
                ],
            }
        ],
        max_tokens=8,
        temperature=0,
    )
    assert with_image.choices[0].message.content.strip()
    # The image really went through the vision tower: 224/16 squared = 196 image tokens in the prompt.
    assert with_image.usage.prompt_tokens - text_only.usage.prompt_tokens >= 196
