"""The one loader of deploy/models.yaml.

Everything that needs a port, a served model name or an engine argument asks
this module: the launcher, the test fixtures, the deployment checks. A profile
may `extends:` another; its roles are deep-merged over the parent's. Then the
CXR_* environment overrides are applied, so an operator can move a port or
point a role at another weights folder without editing the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.contract.paths import MODELS_YAML, REPO_ROOT
from services.contract.roles import Role
from services.contract.version import VERSION


class ConfigError(ValueError):
    """deploy/models.yaml or an override names something that does not exist."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RoleConfig(_Strict):
    engine: Literal["vllm", "onnxruntime"]
    model: str
    served_name: str
    port: int = Field(ge=1, le=65535)
    args: dict[str, Any] = {}
    env: dict[str, str] = {}
    # The model card, for a model whose folder has none (a hub id): a file under deploy/model-cards/.
    card: str | None = None

    def is_local(self) -> bool:
        return self.model.startswith(("models/", "./", "/"))

    def model_location(self, root: Path = REPO_ROOT) -> str:
        """A local path relative to `root` (the repo, or where a container mounts it); a hub id as it is."""
        return str(root / self.model) if self.is_local() else self.model

    def cli_args(self) -> list[str]:
        """The engine arguments as command-line flags, in file order."""
        rendered: list[str] = []
        for key, value in self.args.items():
            if value is False or value is None:
                continue
            rendered.append(f"--{key}")
            if value is True:
                continue
            rendered.append(json.dumps(value) if isinstance(value, Mapping) else str(value))
        return rendered


class GatewayConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)


class BridgeConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)  # DIMSE
    http_port: int = Field(ge=1, le=65535)  # operations: /health, /ready, /metrics
    ae_title: str = Field(min_length=1, max_length=16)


class MonitoringConfig(_Strict):
    """The agreement alert (deploy/prometheus-alerts.yml): a floor on the accepted share, and how many verdicts
    within what window it needs before it may fire."""

    agreement_floor: float = Field(gt=0, lt=1)
    agreement_min_reviews: int = Field(ge=1)
    agreement_window: str = Field(pattern=r"^[1-9][0-9]*[mhdw]$")  # a Prometheus range, e.g. 7d


class SamplingConfig(_Strict):
    """A chat role's generation defaults, used by the gateway when a client sets none."""

    temperature: float = Field(ge=0, le=2)
    top_p: float = Field(gt=0, le=1)
    max_tokens: int = Field(ge=1)
    max_tokens_limit: int | None = Field(default=None, ge=1)  # the most a client may ask (the report's budget)


class ContainerConfig(_Strict):
    images: dict[str, str]  # "{version}" in a tag is cxr-serve's own version

    @field_validator("images")
    @classmethod
    def _versioned(cls, value: dict[str, str]) -> dict[str, str]:
        return {name: image.replace("{version}", VERSION) for name, image in value.items()}

    base_image: str  # what deploy/*.Dockerfile build FROM (build argument BASE_IMAGE)
    user: int  # every container runs as this non-root uid
    app_root: str
    hf_cache: str


class StackConfig(_Strict):
    profile: str
    description: str
    accelerator: Literal["cpu", "gpu"]
    gateway: GatewayConfig
    bridge: BridgeConfig
    containers: ContainerConfig
    monitoring: MonitoringConfig
    roles: dict[Role, RoleConfig]
    sampling: dict[Role, SamplingConfig]
    # GATEWAY_* settings this profile gives the gateway (natively, compose and Kubernetes alike); an
    # operator's own GATEWAY_* variables still win. Each must name a setting of gateway/settings.py.
    gateway_env: dict[str, str] = Field(default_factory=dict)

    @field_validator("gateway_env")
    @classmethod
    def _known_settings(cls, value: dict[str, str]) -> dict[str, str]:
        from gateway.settings import GatewaySettings

        unknown = [k for k in value if k.removeprefix("GATEWAY_").lower() not in GatewaySettings.model_fields]
        if unknown or not all(k.startswith("GATEWAY_") for k in value):
            raise ValueError(f"gateway_env: {sorted(unknown) or sorted(value)} are not GATEWAY_* settings of the gateway")
        return value

    def url(self, role: Role) -> str:
        return f"http://127.0.0.1:{self.roles[role].port}"


def _deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _resolve_profile(profiles: Mapping[str, Any], name: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    if name not in profiles:
        raise ConfigError(f"unknown profile {name!r}; known: {', '.join(sorted(profiles))}")
    if name in seen:
        raise ConfigError(f"profile inheritance loops: {' -> '.join((*seen, name))}")
    raw = dict(profiles[name])
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    return _deep_merge(_resolve_profile(profiles, parent, (*seen, name)), raw)


def _apply_env_overrides(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    if port := env.get("CXR_GATEWAY_PORT"):
        data["gateway"] = {**data["gateway"], "port": int(port)}
    for field in ("port", "http_port"):
        if value := env.get(f"CXR_BRIDGE_{field.upper()}"):
            data["bridge"] = {**data["bridge"], field: int(value)}
    for role in Role:
        overrides = {
            field: env[f"CXR_{role.upper()}_{field.upper()}"]
            for field in ("port", "model")
            if f"CXR_{role.upper()}_{field.upper()}" in env
        }
        if overrides:
            data["roles"][role] = {**data["roles"][role], **overrides}
    return data


def profile_names(path: Path = MODELS_YAML) -> list[str]:
    return sorted(yaml.safe_load(path.read_text())["profiles"])


def load(profile: str | None = None, env: Mapping[str, str] | None = None, path: Path = MODELS_YAML) -> StackConfig:
    """Resolve one profile of models.yaml, with CXR_* overrides from `env` (default: os.environ)."""
    env = os.environ if env is None else env
    document = yaml.safe_load(path.read_text())
    name = profile or env.get("CXR_PROFILE", "cpu")
    resolved = _resolve_profile(document["profiles"], name)
    data = {
        "profile": name,
        "description": " ".join(resolved.get("description", "").split()),
        "accelerator": resolved["accelerator"],
        "gateway": document["gateway"],
        "bridge": document["bridge"],
        "containers": document["containers"],
        "monitoring": document["monitoring"],
        "roles": resolved["roles"],
        "sampling": document["sampling"],
        "gateway_env": resolved.get("gateway_env", {}),
    }
    return StackConfig.model_validate(_apply_env_overrides(data, env))
