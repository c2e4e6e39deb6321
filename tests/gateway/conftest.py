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


@pytest.fixture(scope="session")
def openid(start_gateway, tmp_path_factory):
    """A real OpenID Provider (oidc-provider) and a gateway that trusts it: (provider, gateway)."""
    from scripts.launcher.process import free_port
    from scripts.peers import openid as peer

    assert peer.installed(), f"the login tests need oidc-provider under Node.js: {peer.INSTALL}"
    port = free_port()
    redirect = f"http://127.0.0.1:{port}/ui/callback"
    accounts = {"dr.chen": {"name": "Dr. Chen", "roles": ["radiologist"]}, "visitor": {"name": "Visitor", "roles": []}}
    provider = peer.OpenIdProvider(tmp_path_factory.mktemp("openid"), redirect, AUDIENCE, accounts=accounts, services=SERVICES)
    gateway = start_gateway(
        GATEWAY_PORT=str(port),
        GATEWAY_OIDC_ISSUER=provider.issuer,
        GATEWAY_OIDC_AUDIENCE=AUDIENCE,
        GATEWAY_OIDC_REDIRECT_URL=redirect,
        GATEWAY_OIDC_ROLE_PERMISSIONS=json.dumps(ROLE_PERMISSIONS),
        GATEWAY_OIDC_LEEWAY_S="0",
    )
    yield provider, gateway
    provider.stop()
