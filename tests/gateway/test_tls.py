"""HTTPS on the gateway: a hospital CA, a certificate for the gateway, the official SDK trusting that CA."""

import datetime as dt
import ipaddress
import ssl

import httpx
import openai
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.gateway.conftest import xray_message


def _certificate(subject: str, key, issuer: str, issuer_key, *, ca: bool) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A self-signed hospital CA and a gateway certificate it signed, as PEM files."""
    folder = tmp_path_factory.mktemp("tls")
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("Hospital Test CA", ca_key, "Hospital Test CA", ca_key, ca=True)
    server = _certificate("cxr-serve gateway", server_key, "Hospital Test CA", ca_key, ca=False)
    key_pem = server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        "ca": _pem(folder / "ca.pem", ca.public_bytes(serialization.Encoding.PEM)),
        "cert": _pem(folder / "gateway.crt", server.public_bytes(serialization.Encoding.PEM)),
        "key": _pem(folder / "gateway.key", key_pem),
    }


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
