"""HTTPS on the gateway: a hospital CA, a certificate for the gateway, the official SDK trusting that CA."""

import ssl

import httpx
import openai
import pytest

from tests.gateway.conftest import xray_message


@pytest.fixture(scope="module")
def https_gateway(start_gateway, tls_files):
    return start_gateway(GATEWAY_TLS_CERT_FILE=tls_files["cert"], GATEWAY_TLS_KEY_FILE=tls_files["key"])


def test_the_sdk_trusting_the_hospital_ca_gets_answers_over_https(https_gateway, tls_files, sample_images):
    assert https_gateway.url.startswith("https://")
    trusted = ssl.create_default_context(cafile=tls_files["ca"])
    client = openai.OpenAI(
        base_url=f"{https_gateway.url}/v1", api_key="x", max_retries=0, http_client=httpx.Client(verify=trusted, timeout=120)
    )
    assert "cxr-report" in {model.id for model in client.models.list()}
    answer = client.chat.completions.create(
        model="pneumonia-classifier", messages=xray_message(sample_images["NORMAL2-IM-1427-0001.jpeg"])
    )
    assert "predicted_class" in answer.choices[0].message.content


def test_a_client_that_does_not_trust_the_ca_is_refused_and_plain_http_gets_nothing(https_gateway):
    untrusting = openai.OpenAI(base_url=f"{https_gateway.url}/v1", api_key="x", max_retries=0, timeout=10)
    with pytest.raises(openai.APIConnectionError):
        untrusting.models.list()  # the system's trust store does not know the hospital's CA
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{https_gateway.port}/health", timeout=5)


def test_half_a_tls_configuration_stops_the_start(start_gateway, tls_files):
    with pytest.raises(RuntimeError, match="GATEWAY_TLS_CERT_FILE and GATEWAY_TLS_KEY_FILE"):
        start_gateway(GATEWAY_TLS_CERT_FILE=tls_files["cert"])
