"""Shared fixtures: the real stack, started once per test session through the launcher itself.

Every service runs as it does under `make run` (same argv, same models), on
free ports chosen here and passed as the CXR_* overrides models.yaml
documents, so a developer's own `make run` on the default ports does not
collide with the tests.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scripts.launcher import config
from scripts.launcher.commands import gateway_env
from scripts.launcher.config import StackConfig
from scripts.launcher.process import LauncherProcess, free_port, port_overrides
from services.contract.paths import REPO_ROOT
from tests.tls import hospital_ca_and_certificate

SAMPLES = REPO_ROOT / "models" / "samples"
STARTUP_TIMEOUT_S = 900


# Shorter answers keep the suite fast on 2 cores; they change lengths, not behaviour. A greedy
# ChexFract lets tests compare the pipeline's fracture text with the model's own answer.
# The report budget still holds a whole structured report (a cut one fails closed, by design).
SHORT_OUTPUTS = {
    "GATEWAY_FRACTURE_MAX_TOKENS": "24",
    "GATEWAY_REPORT_MAX_TOKENS": "1024",
    "GATEWAY_FRACTURE_TEMPERATURE": "0",
}


@pytest.fixture(scope="session")
def audit_dir(tmp_path_factory) -> Path:
    """The session stack's audit trail."""
    return tmp_path_factory.mktemp("audit")


@pytest.fixture(scope="session")
def audit_key_file(tmp_path_factory) -> Path:
    """The session stack's audit key, kept apart from its trail (made by the gateway at its first start)."""
    return tmp_path_factory.mktemp("audit-key") / "audit.key"


@pytest.fixture(scope="session")
def stack_env(audit_dir: Path, audit_key_file: Path, tmp_path_factory) -> dict[str, str]:
    bridge_state = {"CXR_BRIDGE_STATE_DIR": str(tmp_path_factory.mktemp("bridge-state"))}
    audit = {"GATEWAY_AUDIT_DIR": str(audit_dir), "GATEWAY_AUDIT_KEY_FILE": str(audit_key_file)}
    return {**port_overrides(), **SHORT_OUTPUTS, **audit, **bridge_state}


@pytest.fixture(scope="session")
def stack_config(stack_env: dict[str, str]) -> StackConfig:
    return config.load("cpu", env=stack_env)


@pytest.fixture(scope="session")
def stack_log_dir(tmp_path_factory) -> Path:
    """Where every service of the session stack writes its log (one file each)."""
    return tmp_path_factory.mktemp("stack-logs")


@pytest.fixture(scope="session")
def stack(stack_env: dict[str, str], stack_config: StackConfig, stack_log_dir: Path) -> Iterator[StackConfig]:
    """The whole cpu-profile stack (both vLLM servers, the classifier, the gateway), once per session."""
    launcher = LauncherProcess(stack_env, stack_log_dir)
    try:
        launcher.wait_for_line("READY ", STARTUP_TIMEOUT_S)
        yield stack_config
    finally:
        launcher.stop()


@pytest.fixture(scope="session")
def sample_images() -> dict[str, bytes]:
    images = {path.name: path.read_bytes() for path in sorted(SAMPLES.glob("*.jpeg"))}
    assert len(images) == 16, f"make setup should have put 16 X-rays in {SAMPLES}"
    return images


def data_uri(image: bytes, mime: str = "image/jpeg") -> str:
    return f"data:{mime};base64,{base64.b64encode(image).decode()}"


def gateway_url(stack: StackConfig) -> str:
    return f"http://127.0.0.1:{stack.gateway.port}"


class GatewayProcess:
    """A second gateway (`python -m gateway serve`) with its own settings, beside the session stack."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = int(env["GATEWAY_PORT"])
        self.audit_dir = Path(env["GATEWAY_AUDIT_DIR"])
        self.url = f"{'https' if env.get('GATEWAY_TLS_CERT_FILE') else 'http'}://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve"],
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1, verify=False).status_code == 200:  # started, not trusted
                    return
            except httpx.HTTPError:
                time.sleep(0.3)
        raise TimeoutError("gateway did not start")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self._log.close()


@pytest.fixture(scope="session")
def start_gateway(stack: StackConfig, tmp_path_factory):
    """Factory: a gateway for `stack` with some settings overridden; stopped at the end of the session."""
    yield from _gateways(stack, tmp_path_factory)


@pytest.fixture(scope="session")
def start_gateway_without_models(stack_config: StackConfig, tmp_path_factory):
    """The same factory for what calls no model (the review): the stack's model servers need not run."""
    yield from _gateways(stack_config, tmp_path_factory)


def _gateways(stack: StackConfig, tmp_path_factory):
    started: list[GatewayProcess] = []

    def start(**overrides: str) -> GatewayProcess:
        folder = tmp_path_factory.mktemp("gateway-audit")
        audit = {"GATEWAY_AUDIT_DIR": str(folder / "trail"), "GATEWAY_AUDIT_KEY_FILE": str(folder / "audit.key")}
        env = {**gateway_env(stack), **SHORT_OUTPUTS, **audit, "GATEWAY_PORT": str(free_port()), **overrides}
        process = GatewayProcess(env, tmp_path_factory.mktemp("gateway") / "gateway.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


# The fast tier (`make test-fast`) is every test that needs no model server: a test is marked `model_servers`
# when it uses the session stack (directly or through a fixture) or is in a module that starts vLLM or
# llama.cpp itself (those declare `pytestmark = pytest.mark.model_servers`).
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.model_servers)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory) -> dict[str, str]:
    """A hospital CA and a gateway certificate it signed: {"ca", "cert", "key"} → PEM file paths."""
    return hospital_ca_and_certificate(tmp_path_factory.mktemp("tls"))
