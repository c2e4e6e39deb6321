import openai
import pytest

from tests.conftest import data_uri, gateway_url


@pytest.fixture(scope="session")
def client(stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway_url(stack)}/v1", api_key="unused", max_retries=0, timeout=300)


@pytest.fixture(scope="session")
def async_client(stack) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gateway_url(stack)}/v1", api_key="unused", max_retries=0, timeout=600)


def xray_message(image: bytes, text: str = "Cough and fever for three days.", mime: str = "image/jpeg") -> list[dict]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": data_uri(image, mime)}},
                {"type": "text", "text": text},
            ],
        }
    ]
