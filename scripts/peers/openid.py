"""A real OpenID Provider: panva's oidc-provider (OpenID Certified, from npm; scripts/peers/oidc/) under the
machine's Node.js, on loopback, configured by scripts/peers/oidc/provider.mjs.

Used by the tests of people's logins and bearer JWTs (tests/gateway/test_people.py, tests/gateway/ui/test_login.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from scripts.launcher.process import free_port

FOLDER = Path(__file__).parent / "oidc"
INSTALL = "make test-peers (it runs npm ci in scripts/peers/oidc)"


def installed() -> bool:
    return shutil.which("node") is not None and (FOLDER / "node_modules" / "oidc-provider").is_dir()


class OpenIdProvider:
    """`accounts`: login -> {name, roles}; `services`: client id -> {secret, roles, ttl}. Any password logs in."""

    def __init__(self, folder: Path, gateway_redirect: str, audience: str, **config: Any) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.config = folder / "provider.json"
        self.config.write_text(json.dumps({"gateway_redirect": gateway_redirect, "audience": audience, **config}))
        self._output = (folder / "provider-output.txt").open("wb")
        self._process = subprocess.Popen(
            ["node", str(FOLDER / "provider.mjs"), str(self.port), str(self.config)],
            stdout=self._output,
            stderr=subprocess.STDOUT,
            cwd=FOLDER,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"oidc-provider exited: {(folder / 'provider-output.txt').read_text()[-2000:]}")
            try:
                httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise TimeoutError("oidc-provider did not start")

    def client_credentials(self, client_id: str, secret: str, resource: str) -> str:
        """An access token for a service (client_credentials grant, RFC 8707 resource)."""
        answer = httpx.post(
            f"{self.issuer}/token",
            auth=(client_id, secret),
            data={"grant_type": "client_credentials", "resource": resource, "scope": "openid"},
        )
        answer.raise_for_status()
        token: str = answer.json()["access_token"]
        return token

    def jwks(self) -> dict[str, Any]:
        document: dict[str, Any] = httpx.get(f"{self.issuer}/jwks").json()
        return document

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=20)
        self._output.close()
