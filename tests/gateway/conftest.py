import json

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


AUDIENCE = "urn:cxr-serve"
ROLE_PERMISSIONS = {"radiologist": ["analyze", "review"], "cxr-admin": ["admin"], "cxr-analyze": ["analyze"]}
SERVICES = {
    "batch-job": {"secret": "batch-job-secret-0123456789", "roles": ["cxr-analyze"]},
    "short-lived": {"secret": "short-lived-secret-0123456789", "roles": ["cxr-analyze"], "ttl": 1},
}


ACCOUNTS = {"dr.chen": {"name": "Dr. Chen", "roles": ["radiologist"]}, "visitor": {"name": "Visitor", "roles": []}}


def openid_provider(folder, accounts: dict = ACCOUNTS):
    """A real OpenID Provider (oidc-provider) for a gateway on a new port: (provider, the gateway's settings)."""
    from scripts.launcher.process import free_port
    from scripts.peers import openid as peer

    assert peer.installed(), f"the login tests need oidc-provider under Node.js: {peer.INSTALL}"
    port = free_port()
    redirect = f"http://127.0.0.1:{port}/ui/callback"
    provider = peer.OpenIdProvider(folder, redirect, AUDIENCE, accounts=accounts, services=SERVICES)
    settings = {
        "GATEWAY_PORT": str(port),
        "GATEWAY_OIDC_ISSUER": provider.issuer,
        "GATEWAY_OIDC_AUDIENCE": AUDIENCE,
        "GATEWAY_OIDC_REDIRECT_URL": redirect,
        "GATEWAY_OIDC_ROLE_PERMISSIONS": json.dumps(ROLE_PERMISSIONS),
    }
    return provider, settings


@pytest.fixture(scope="session")
def openid(start_gateway, tmp_path_factory):
    """A real OpenID Provider (oidc-provider) and a gateway that trusts it: (provider, gateway)."""
    provider, settings = openid_provider(tmp_path_factory.mktemp("openid"))
    gateway = start_gateway(**settings, GATEWAY_OIDC_LEEWAY_S="0")
    yield provider, gateway
    provider.stop()
