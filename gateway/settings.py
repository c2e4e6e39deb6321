"""Gateway settings: environment variables prefixed GATEWAY_, or a `.env`-style file.

`make run` derives the backend URLs, served names and sampling defaults from
deploy/models.yaml (scripts/launcher/commands.py: gateway_env); a GATEWAY_*
variable the operator sets wins over them. Compose and Kubernetes set the same
variables. Unsafe values fail at start-up, not at the first request.

Any OpenAI-compatible server can be a chat backend (vLLM, llama.cpp, Ollama,
TGI): per role a base URL (the server root or its `/v1`), the served model
name, and an optional API key (`GATEWAY_<ROLE>_API_KEY` or `_API_KEY_FILE`,
never logged).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gateway.clinical import Language
from services.contract.limits import InputLimits
from services.contract.modelcard import CARD_FILE
from services.contract.roles import Role


def server_root(url: str) -> str:
    """A backend's root URL, given its root or its OpenAI base (`http://host:11434/v1`, as the seeds write it)."""
    root = url.strip().rstrip("/")
    return root.removesuffix("/v1")


@dataclass(frozen=True)
class BackendSettings:
    role: Role
    root_url: str  # the server root: /health, /v2/..., and /v1/... below it
    model: str
    card_file: Path  # the model card: GATEWAY_<ROLE>_MODEL_CARD, else model_card.json in the model folder
    timeout_s: float
    max_concurrency: int
    api_key: str | None = field(default=None, repr=False)  # never in a repr, a log line or an error


@dataclass(frozen=True)
class ProbePolicy:
    fresh_s: float  # a readiness verdict (or a real call's success) is reused this long
    timeout_s: float  # a probe's inference must answer within this


@dataclass(frozen=True)
class SamplingDefaults:
    """A chat role's generation settings when the client gives none (models.yaml: roles.<role>.sampling)."""

    temperature: float
    top_p: float
    max_tokens: int


class GatewaySettings(BaseSettings, InputLimits):  # InputLimits: body, headers, pixels, DICOM policy
    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)

    report_url: str = "http://127.0.0.1:8101"
    report_model: str = "report-llm"
    report_model_dir: str = "models/report-llm"
    fracture_url: str = "http://127.0.0.1:8102"
    fracture_model: str = "chexfract"
    fracture_model_dir: str = "models/fracture-vlm"
    classifier_url: str = "http://127.0.0.1:8001"
    classifier_model: str = "pneumonia-classifier"
    classifier_model_dir: str = "models/pneumonia-classifier"
    pipeline_model: str = "cxr-report"
    # A model card file for a role whose model folder has none (hub weights: deploy/model-cards/).
    report_model_card: Path | None = None
    fracture_model_card: Path | None = None
    classifier_model_card: Path | None = None
    # A deployment for commercial use: the gateway refuses to start while any configured model's card
    # does not allow commercial use (e.g. ChexFract, CC BY-NC 4.0), naming each.
    commercial_use: bool = False

    # The audit trail (gateway/audit.py): an append-only, hash-chained JSON-lines file, separate from
    # the log. Study UIDs are recorded as HMAC-SHA256 under the audit key (GATEWAY_AUDIT_KEY or
    # _KEY_FILE); without one, a random key is made once and kept beside the trail (mode 0600).
    audit_dir: Path = Path("logs/audit")
    audit_key: SecretStr | None = None
    audit_key_file: Path | None = None
    audit_max_bytes: int = Field(default=64 * 1024 * 1024, ge=4096)  # then the file is rotated, the chain kept

    # Comma-separated keys, or a file with one key per line (e.g. a Kubernetes Secret).
    api_keys: Annotated[list[SecretStr], NoDecode] = []
    api_keys_file: Path | None = None

    default_language: Language = "en"
    connect_timeout_s: float = Field(default=5.0, gt=0)
    classifier_timeout_s: float = Field(default=30.0, gt=0)
    fracture_timeout_s: float = Field(default=120.0, gt=0)
    report_timeout_s: float = Field(default=300.0, gt=0)
    # Circuit breaker per backend (gateway/backends/health.py): open after this many backend faults in a
    # row, then calls fail at once for the cooldown, then one trial call.
    breaker_failures: int = Field(default=5, ge=1)
    breaker_cooldown_s: float = Field(default=10.0, gt=0)
    # Readiness: a real probe (one token, one tensor) at most once per ready_fresh_s per backend, none while
    # real calls succeed; a probe not answered within probe_timeout_s makes the backend not ready.
    ready_fresh_s: float = Field(default=5.0, gt=0)
    probe_timeout_s: float = Field(default=10.0, gt=0)
    # One budget for a whole cxr-report (classifier, ChexFract and the report together). The per-backend
    # timeouts above bound each read (a backend's silence); this bounds the request, however steadily a
    # backend writes. A stage still running at the deadline fails (partial, or 503 for the classifier).
    request_deadline_s: float = Field(default=360.0, gt=0)
    # In-flight requests per backend; beyond it the gateway answers 429 + Retry-After.
    classifier_max_concurrency: int = Field(default=128, ge=1)
    fracture_max_concurrency: int = Field(default=64, ge=1)
    report_max_concurrency: int = Field(default=64, ge=1)
    # API keys the gateway sends to each backend (a key, or a file holding one, e.g. a mounted secret).
    classifier_api_key: SecretStr | None = None
    classifier_api_key_file: Path | None = None
    fracture_api_key: SecretStr | None = None
    fracture_api_key_file: Path | None = None
    report_api_key: SecretStr | None = None
    report_api_key_file: Path | None = None

    # Sampling defaults per chat role: deploy/models.yaml (`sampling:`) is their one source, and
    # `make run`, compose and Kubernetes set them; a gateway started without them stops, naming them.
    fracture_temperature: float = Field(ge=0, le=2)
    fracture_top_p: float = Field(gt=0, le=1)
    fracture_max_tokens: int = Field(ge=1, le=32768)
    report_temperature: float = Field(ge=0, le=2)
    report_top_p: float = Field(gt=0, le=1)
    # The report budget when the client sets none, and the most a client's max_(completion_)tokens may ask.
    report_max_tokens: int = Field(ge=1, le=32768)
    report_max_tokens_limit: int = Field(ge=1, le=32768)

    # The clinical indication's share of the report model's context, in its tokens; longer is a 400. The cpu
    # profile's 2048 tokens hold the report budget (1024), the longest prompt (~700, Chinese) and this.
    max_indication_tokens: int = Field(default=256, ge=1)

    # A streamed cxr-report sends an SSE comment this often while its report is written (sent once validated).
    stream_keepalive_s: float = Field(default=10.0, gt=0)

    # HTTPS: a PEM certificate (chain) and its key; without them plain HTTP, meant for 127.0.0.1 only.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # file:// image URLs are refused unless they resolve under this folder.
    image_folder: Path | None = None
    # http(s) image URLs would make the gateway fetch from the network: off unless an operator opts in.
    allow_remote_images: bool = False
    remote_image_timeout_s: float = Field(default=10.0, gt=0)

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        return [k.strip() for k in value.split(",") if k.strip()] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _fail_fast(self) -> GatewaySettings:
        for key in self.all_api_keys():
            if len(key) < 16:
                raise ValueError("every API key must be at least 16 characters")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("set both GATEWAY_TLS_CERT_FILE and GATEWAY_TLS_KEY_FILE, or neither")
        for tls_file in (self.tls_cert_file, self.tls_key_file):
            if tls_file is not None and not tls_file.is_file():
                raise ValueError(f"TLS file {tls_file} does not exist")
        if self.image_folder is not None and not self.image_folder.is_dir():
            raise ValueError(f"GATEWAY_IMAGE_FOLDER {self.image_folder} is not a folder")
        if self.audit_key is not None and self.audit_key_file is not None:
            raise ValueError("set GATEWAY_AUDIT_KEY or GATEWAY_AUDIT_KEY_FILE, not both")
        if self.report_max_tokens > self.report_max_tokens_limit:
            raise ValueError("GATEWAY_REPORT_MAX_TOKENS must not exceed GATEWAY_REPORT_MAX_TOKENS_LIMIT")
        for role in Role:
            if getattr(self, f"{role}_api_key") is not None and getattr(self, f"{role}_api_key_file") is not None:
                raise ValueError(f"set GATEWAY_{role.upper()}_API_KEY or GATEWAY_{role.upper()}_API_KEY_FILE, not both")
            if not server_root(getattr(self, f"{role}_url")).startswith(("http://", "https://")):
                raise ValueError(f"GATEWAY_{role.upper()}_URL must be an http(s) URL")
        return self

    def backend(self, role: Role) -> BackendSettings:
        """One backend's settings, gathered from the flat GATEWAY_<ROLE>_* fields."""
        return BackendSettings(
            role=role,
            root_url=server_root(getattr(self, f"{role}_url")),
            model=getattr(self, f"{role}_model"),
            card_file=getattr(self, f"{role}_model_card") or Path(getattr(self, f"{role}_model_dir")) / CARD_FILE,
            timeout_s=getattr(self, f"{role}_timeout_s"),
            max_concurrency=getattr(self, f"{role}_max_concurrency"),
            api_key=self._backend_key(role),
        )

    def _backend_key(self, role: Role) -> str | None:
        key: SecretStr | None = getattr(self, f"{role}_api_key")
        key_file: Path | None = getattr(self, f"{role}_api_key_file")
        if key_file is not None:
            return key_file.read_text().strip() or None
        return key.get_secret_value() if key is not None else None

    def probe_policy(self) -> ProbePolicy:
        return ProbePolicy(fresh_s=self.ready_fresh_s, timeout_s=self.probe_timeout_s)

    def sampling(self, role: Role) -> SamplingDefaults:
        return SamplingDefaults(
            temperature=getattr(self, f"{role}_temperature"),
            top_p=getattr(self, f"{role}_top_p"),
            max_tokens=getattr(self, f"{role}_max_tokens"),
        )

    def audit_secret(self) -> str | None:
        if self.audit_key_file is not None:
            return self.audit_key_file.read_text().strip() or None
        return self.audit_key.get_secret_value() if self.audit_key is not None else None

    def all_api_keys(self) -> list[str]:
        keys = [k.get_secret_value() for k in self.api_keys]
        if self.api_keys_file is not None:
            keys += [line.strip() for line in self.api_keys_file.read_text().splitlines() if line.strip()]
        return keys
