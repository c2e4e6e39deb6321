"""TLS around the gateway: HTTPS with a hospital CA's certificate (the official SDK trusting that CA), client
certificates naming clients (mutual TLS), https backends verified against a configured CA, and CORS."""

import json
import os
import ssl
import subprocess
import sys

import httpx
import openai
import pytest
import yaml

from scripts.launcher.process import free_port
from services.contract.paths import REPO_ROOT
from tests.conftest import gateway_url
from tests.gateway.conftest import xray_message
from tests.tls import CLIENT_SUBJECT
from tests.waiting import wait_until


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
    with pytest.raises(RuntimeError, match="GATEWAY_TLS_CLIENT_CA_FILE needs GATEWAY_TLS_CERT_FILE"):
        start_gateway(GATEWAY_TLS_CLIENT_CA_FILE=tls_files["ca"])


# --- mutual TLS: client certificates name clients ------------------------------------------------------------


@pytest.fixture(scope="module")
def mtls_gateway(start_gateway, tls_files, tmp_path_factory):
    clients = tmp_path_factory.mktemp("mtls") / "clients.yaml"
    entry = {"name": "his", "certificate_subjects": [CLIENT_SUBJECT], "permissions": ["analyze"]}
    clients.write_text(yaml.safe_dump({"clients": [entry]}))
    return start_gateway(
        GATEWAY_TLS_CERT_FILE=tls_files["cert"],
        GATEWAY_TLS_KEY_FILE=tls_files["key"],
        GATEWAY_TLS_CLIENT_CA_FILE=tls_files["ca"],
        GATEWAY_CLIENTS_FILE=str(clients),
    )


def test_a_client_certificate_from_the_hospital_ca_names_its_client(mtls_gateway, tls_files, sample_images):
    trusted = ssl.create_default_context(cafile=tls_files["ca"])
    trusted.load_cert_chain(tls_files["client_cert"], tls_files["client_key"])
    with httpx.Client(base_url=mtls_gateway.url, verify=trusted, timeout=120) as http:
        assert {m["id"] for m in http.get("/v1/models").json()["data"]} == {"cxr-report", "pneumonia-classifier"}
        body = {"model": "report-llm", "messages": [{"role": "user", "content": "hi"}]}
        assert http.post("/v1/chat/completions", json=body).status_code == 403  # analyze only: no chat
        body = {"model": "pneumonia-classifier", "messages": xray_message(sample_images["NORMAL2-IM-1427-0001.jpeg"])}
        assert http.post("/v1/chat/completions", json=body, headers={"x-request-id": "mtls-1"}).status_code == 200
    records = [json.loads(line) for line in (mtls_gateway.audit_dir / "audit.jsonl").read_text().splitlines()]
    assert next(r for r in records if r["request_id"] == "mtls-1")["actor"] == "his"


def test_no_certificate_is_a_401_and_another_cas_certificate_fails_the_handshake(mtls_gateway, tls_files):
    plain = ssl.create_default_context(cafile=tls_files["ca"])
    answer = httpx.get(f"{mtls_gateway.url}/v1/models", verify=plain)
    assert answer.status_code == 401 and answer.json()["error"]["type"] == "authentication_error"
    stranger = ssl.create_default_context(cafile=tls_files["ca"])
    stranger.load_cert_chain(tls_files["stranger_cert"], tls_files["stranger_key"])
    with pytest.raises(httpx.HTTPError):  # same subject, but no hospital CA signed it: refused by TLS itself
        httpx.get(f"{mtls_gateway.url}/v1/models", verify=stranger)
    assert httpx.get(f"{mtls_gateway.url}/health", verify=plain).status_code == 200


# --- TLS to a backend, with the hospital's CA --------------------------------------------------------------


@pytest.fixture(scope="module")
def https_classifier(tls_files, tmp_path_factory):
    """The real classifier worker serving HTTPS with the hospital CA's certificate."""
    port = free_port()
    env = {**os.environ, "CLASSIFIER_PORT": str(port), "CLASSIFIER_TLS_CERT_FILE": tls_files["cert"]}
    env |= {"CLASSIFIER_TLS_KEY_FILE": tls_files["key"], "CLASSIFIER_INTRA_OP_THREADS": "1"}
    log = (tmp_path_factory.mktemp("https-worker") / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "services.classifier"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT
    )
    url = f"https://127.0.0.1:{port}"
    trusted = ssl.create_default_context(cafile=tls_files["ca"])
    wait_until(lambda: _answers(f"{url}/v2/health/ready", trusted), 120, "the HTTPS worker ready")
    yield url
    worker.terminate()
    worker.wait(timeout=30)


def _answers(url: str, verify: ssl.SSLContext) -> bool:
    try:
        return httpx.get(url, verify=verify, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_an_https_backend_is_verified_against_the_configured_ca(start_gateway, https_classifier, tls_files, sample_images):
    body = {"model": "pneumonia-classifier", "messages": xray_message(sample_images["NORMAL2-IM-1427-0001.jpeg"])}
    trusting = start_gateway(GATEWAY_CLASSIFIER_URL=https_classifier, GATEWAY_BACKEND_CA_FILE=tls_files["ca"])
    answer = httpx.post(f"{trusting.url}/v1/chat/completions", json=body, timeout=120)
    assert answer.status_code == 200 and "predicted_class" in answer.json()["choices"][0]["message"]["content"]
    untrusting = start_gateway(GATEWAY_CLASSIFIER_URL=https_classifier)  # the system's CAs do not know the hospital's
    refused = httpx.post(f"{untrusting.url}/v1/chat/completions", json=body, timeout=120)
    assert refused.status_code == 503 and "classifier backend failed" in refused.json()["error"]["message"]


# --- CORS: closed unless an origin is configured -----------------------------------------------------------

PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}


def test_cors_is_closed_by_default_and_open_only_to_the_configured_origin(stack, start_gateway):
    viewer, other = "https://viewer.hospital.example", "https://elsewhere.example"
    closed = gateway_url(stack)
    for origin in (viewer, other):
        answer = httpx.options(f"{closed}/v1/chat/completions", headers={"Origin": origin, **PREFLIGHT})
        assert "access-control-allow-origin" not in answer.headers
        assert "access-control-allow-origin" not in httpx.get(f"{closed}/v1/models", headers={"Origin": origin}).headers
    opened = start_gateway(GATEWAY_CORS_ORIGINS=viewer)
    allowed = httpx.options(f"{opened.url}/v1/chat/completions", headers={"Origin": viewer, **PREFLIGHT})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == viewer
    assert httpx.get(f"{opened.url}/v1/models", headers={"Origin": viewer}).headers["access-control-allow-origin"] == viewer
    refused = httpx.options(f"{opened.url}/v1/chat/completions", headers={"Origin": other, **PREFLIGHT})
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
