"""Bearer JWTs from the hospital's OpenID Provider (a real oidc-provider on loopback) on the API: roles mapped
to permissions, and every forged, expired, misaddressed or mis-signed token refused (OWASP API2:2023)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.gateway.conftest import AUDIENCE, SERVICES


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token_of(provider, service: str, resource: str = AUDIENCE) -> str:
    return provider.client_credentials(service, SERVICES[service]["secret"], resource)


def refusal(gateway, token: str) -> str:
    answer = httpx.get(f"{gateway.url}/v1/models", headers=bearer(token))
    assert answer.status_code == 401 and answer.json()["error"]["type"] == "authentication_error", answer.text
    return answer.json()["error"]["message"]


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_services_token_gives_the_permissions_its_roles_map_to(openid):
    provider, gateway = openid
    token = token_of(provider, "batch-job")
    listed = httpx.get(f"{gateway.url}/v1/models", headers=bearer(token))
    assert listed.status_code == 200
    assert {m["id"] for m in listed.json()["data"]} == {"cxr-report", "pneumonia-classifier"}  # analyze, not chat
    body = {"model": "report-llm", "messages": [{"role": "user", "content": "hi"}]}
    refused = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=bearer(token))
    assert refused.status_code == 403 and "'user:batch-job'" in refused.json()["error"]["message"]
    assert httpx.get(f"{gateway.url}/metrics", headers=bearer(token)).status_code == 403
    assert token not in gateway.log_text()


def test_tokens_for_another_audience_or_expired_are_refused(openid):
    provider, gateway = openid
    assert "another audience" in refusal(gateway, token_of(provider, "batch-job", resource="urn:another-service"))
    short = token_of(provider, "short-lived")
    assert httpx.get(f"{gateway.url}/v1/models", headers=bearer(short)).status_code == 200
    time.sleep(2.1)  # its lifetime is 1 s; the test gateway allows no clock skew
    assert "expired" in refusal(gateway, short)


def test_alg_none_hs256_with_the_public_key_and_a_stranger_key_are_refused(openid):
    provider, gateway = openid
    real = token_of(provider, "batch-job")
    header, claims = jwt.get_unverified_header(real), jwt.decode(real, options={"verify_signature": False})
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    assert "algorithm 'none' is not accepted" in refusal(gateway, unsigned)
    # The key confusion attack: the provider's public key, published in its JWKS, used as an HMAC secret.
    public = jwt.PyJWK.from_dict(provider.jwks()["keys"][0]).key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signed = f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': header['kid']})}.{_b64(claims)}"
    mac = base64.urlsafe_b64encode(hmac.new(public, signed.encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
    hs = f"{signed}.{mac}"  # by hand: PyJWT itself refuses to use a PEM key as an HMAC secret
    assert "algorithm 'HS256' is not accepted" in refusal(gateway, hs)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode({**claims, "roles": ["cxr-admin"]}, stranger, algorithm="RS256", headers={"kid": header["kid"]})
    assert "signature does not verify" in refusal(gateway, forged)
    unknown_kid = jwt.encode(claims, stranger, algorithm="RS256", headers={"kid": "not-the-providers"})
    assert "key the provider does not publish" in refusal(gateway, unknown_kid)
    assert "not a JWT" in refusal(gateway, "not.a.jwt")


def test_symmetric_algorithms_and_a_missing_audience_stop_the_start(start_gateway, openid):
    provider, _ = openid
    settings = {"GATEWAY_OIDC_ISSUER": provider.issuer, "GATEWAY_OIDC_ROLE_PERMISSIONS": '{"r": ["chat"]}'}
    with pytest.raises(RuntimeError, match="only asymmetric algorithms"):
        start_gateway(**settings, GATEWAY_OIDC_AUDIENCE=AUDIENCE, GATEWAY_OIDC_ALGORITHMS="RS256,HS256")
    with pytest.raises(RuntimeError, match="GATEWAY_OIDC_AUDIENCE is needed"):
        start_gateway(**settings)
