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

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gateway.backends.calls import Sampling
from gateway.clinical.consistency import ConsistencyPolicy
from gateway.clinical.content import Language
from gateway.identity import Permission
from services.contract.jsonlog import LogSettings
from services.contract.limits import InputLimits
from services.contract.modelcard import CARD_FILE
from services.contract.review import DicomText
from services.contract.roles import Role
from services.contract.serving import ServingSettings


def server_root(url: str) -> str:
    """A backend's root URL, given its root or its OpenAI base (`http://host:11434/v1`, as the seeds write it)."""
    root = url.strip().rstrip("/")
    return root.removesuffix("/v1")


@dataclass(frozen=True)
class ProbePolicy:
    fresh_s: float  # a readiness verdict (or a real call's success) is reused this long
    timeout_s: float  # a probe's inference must answer within this


class BackendRole(BaseModel):
    """One backend's settings: GATEWAY_<ROLE>_URL, _MODEL, _MODEL_DIR, _MODEL_CARD, _TIMEOUT_S, _MAX_CONCURRENCY,
    _API_KEY or _API_KEY_FILE. Each role below gives its own defaults."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    url: str  # the server root or its OpenAI base (`http://host:11434/v1`)
    model: str  # the served model name
    model_dir: Path  # the model folder: its model card (licence, stand-in or not) and, for the classifier, model.json
    # A model card file for a role whose model folder has none (hub weights: deploy/model-cards/).
    model_card: Path | None = None
    timeout_s: float = Field(gt=0)  # bounds each read: a backend's silence
    # In-flight requests to this backend; beyond it the gateway answers 429 + Retry-After (gateway/admission.py).
    max_concurrency: int = Field(ge=1)
    # The API key the gateway sends to this backend (a key, or a file holding one, e.g. a mounted secret).
    api_key: SecretStr | None = None
    api_key_file: Path | None = None

    @model_validator(mode="after")
    def _one_key_and_an_http_url(self) -> BackendRole:
        if self.api_key is not None and self.api_key_file is not None:
            raise ValueError("set _API_KEY or _API_KEY_FILE, not both")
        if not self.root_url.startswith(("http://", "https://")):
            raise ValueError("_URL must be an http(s) URL")
        return self

    @property
    def root_url(self) -> str:
        """The server root: /health, /v2/..., and /v1/... below it."""
        return server_root(self.url)

    @property
    def card_file(self) -> Path:
        """The model card: _MODEL_CARD, else model_card.json in the model folder."""
        return self.model_card or self.model_dir / CARD_FILE

    def key(self) -> str | None:
        """The key for this backend, read when the gateway starts; never in a repr, a log line or an error."""
        if self.api_key_file is not None:
            return self.api_key_file.read_text().strip() or None
        return self.api_key.get_secret_value() if self.api_key is not None else None


class ChatRole(BackendRole):
    """A chat role's generation settings when the client gives none: deploy/models.yaml (`sampling:`) is their
    one source, and `make run`, compose and Kubernetes set them; a gateway started without them stops, naming them."""

    temperature: float = Field(ge=0, le=2)  # sampling temperature when the client sets none
    top_p: float = Field(gt=0, le=1)  # nucleus sampling when the client sets none
    max_tokens: int = Field(ge=1, le=32768)  # the generation budget when the client sets none

    def sampling(self) -> Sampling:
        return Sampling(max_tokens=self.max_tokens, temperature=self.temperature, top_p=self.top_p)


class ClassifierRole(BackendRole):
    url: str = "http://127.0.0.1:8001"
    model: str = "pneumonia-classifier"
    model_dir: Path = Path("models/pneumonia-classifier")
    timeout_s: float = Field(default=30.0, gt=0)
    max_concurrency: int = Field(default=128, ge=1)


class FractureRole(ChatRole):
    url: str = "http://127.0.0.1:8102"
    model: str = "chexfract"
    model_dir: Path = Path("models/fracture-vlm")
    timeout_s: float = Field(default=120.0, gt=0)
    max_concurrency: int = Field(default=64, ge=1)


class ReportRole(ChatRole):
    url: str = "http://127.0.0.1:8101"
    model: str = "report-llm"
    model_dir: Path = Path("models/report-llm")
    timeout_s: float = Field(default=300.0, gt=0)
    max_concurrency: int = Field(default=64, ge=1)
    # The most a client's max_(completion_)tokens may ask (max_tokens is the budget when it sets none).
    max_tokens_limit: int = Field(ge=1, le=32768)

    @model_validator(mode="after")
    def _budget_within_limit(self) -> ReportRole:
        if self.max_tokens > self.max_tokens_limit:
            raise ValueError("GATEWAY_REPORT_MAX_TOKENS must not exceed GATEWAY_REPORT_MAX_TOKENS_LIMIT")
        return self


class GatewaySettings(BaseSettings, InputLimits, ServingSettings, LogSettings):  # limits: body, headers, pixels, DICOM; TLS
    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        # GATEWAY_REPORT_MAX_CONCURRENCY is report.max_concurrency: the first word after the prefix names the role.
        env_nested_delimiter="_",
        env_nested_max_split=1,
        hide_input_in_errors=True,  # a refused value is never echoed (it may be a key)
    )

    host: str = "127.0.0.1"  # the address it listens on (0.0.0.0 in a container)
    port: int = Field(default=8080, ge=1, le=65535)  # the port of the API, the web page and /metrics

    # The three backends, each by role (GATEWAY_CLASSIFIER_*, GATEWAY_FRACTURE_*, GATEWAY_REPORT_*).
    classifier: ClassifierRole = ClassifierRole()
    fracture: FractureRole
    report: ReportRole
    pipeline_model: str = "cxr-report"
    # A deployment for commercial use: the gateway refuses to start while any configured model's card
    # does not allow commercial use (e.g. ChexFract, CC BY-NC 4.0), naming each.
    commercial_use: bool = False

    # The audit trail (gateway/audit.py): an append-only JSON-lines file, separate from the log, each record
    # sealed with HMAC-SHA256 under the audit key and chained to the one before. The key file is a mounted
    # secret in a deployment, never inside the trail's folder; when it does not exist, a random key is made
    # there once (mode 0600), as `make run` does.
    audit_dir: Path = Path("logs/audit")
    audit_key_file: Path = Path("secrets/audit.key")
    audit_max_bytes: int = Field(default=64 * 1024 * 1024, ge=4096)  # then the file is rotated, the chain kept
    # The audit repository (gateway/audit_syslog.py): `host:port` of a syslog-over-TLS receiver (RFC 5425), the
    # CA that signed its certificate, and the gateway's own certificate where it asks for one (mutual TLS).
    audit_syslog_address: str | None = Field(default=None, pattern=r"^[A-Za-z0-9.:\[\]-]+:[0-9]{1,5}$")
    audit_syslog_ca_file: Path | None = None
    audit_syslog_cert_file: Path | None = None
    audit_syslog_key_file: Path | None = None
    audit_syslog_retry_s: float = Field(default=5.0, gt=0)

    # OpenTelemetry traces (gateway/tracing.py), off while unset: the hospital's collector's OTLP/HTTP traces URL,
    # e.g. http://otel-collector:4318/v1/traces. Spans carry ids, stages, models and statuses, never content.
    otlp_traces_endpoint: str | None = Field(default=None, pattern=r"^https?://")

    # Named clients, their permissions and limits (gateway/identity.py); reloaded on SIGHUP and on change.
    clients_file: Path | None = None
    # People through the hospital's OpenID Provider (gateway/oidc.py): off until an issuer is set.
    oidc_issuer: str | None = None
    oidc_client_id: str = "cxr-serve-ui"  # the web page's client at the provider (public: PKCE, no secret)
    oidc_audience: str | None = None  # the API's resource indicator: the `aud` of the access tokens it accepts
    oidc_redirect_url: str | None = None  # https://<the gateway's name>/ui/callback, registered at the provider
    oidc_jwks_url: str | None = None  # default: the provider's discovery document's jwks_uri
    oidc_jwks_file: Path | None = None  # a JWKS kept as a file instead (a provider the gateway cannot reach)
    oidc_ca_file: Path | None = None  # the CA of the provider's HTTPS certificate; default: the system's
    oidc_algorithms: Annotated[list[str], NoDecode] = ["RS256", "PS256", "ES256"]
    oidc_roles_claim: str = "roles"  # a dotted path into the token's claims (Keycloak: realm_access.roles)
    oidc_name_claim: str = "preferred_username"
    oidc_leeway_s: float = Field(default=30.0, ge=0, le=300)  # clock skew allowed on exp / nbf / iat
    # JSON: role -> permissions, e.g. {"radiologist": ["analyze", "review"], "cxr-admin": ["admin"]}.
    oidc_role_permissions: dict[str, frozenset[Permission]] = {}
    # A study-level restriction of the review: the claim (e.g. "sites") listing the sites, by the studies' DICOM
    # InstitutionName, whose results a person may see and sign; a login without it sees none. Unset: every study.
    oidc_sites_claim: str | None = None
    # The radiologists' review (gateway/routes/reviews.py, /ui/review): the bridge's operations URL, and the review
    # token it was given (its CXR_BRIDGE_REVIEW_TOKEN); off while unset. The organisation each verified SR names.
    review_url: str | None = Field(default=None, pattern=r"^https?://")
    review_api_key: SecretStr | None = None
    review_timeout_s: float = Field(default=60.0, gt=0)  # one call to the bridge, which asks the PACS
    review_organization: DicomText = "Radiology"
    # Deprecated: comma-separated keys, or a file with one key per line, each a client with every permission.
    api_keys: Annotated[list[SecretStr], NoDecode] = []
    api_keys_file: Path | None = None

    # The share of each backend's slots (_MAX_CONCURRENCY) kept for STAT requests, rounded up, one slot always
    # left for routine work (gateway/admission.py): routine requests are refused (429) beyond the rest. A quarter:
    # the 64 slots of the cpu profile keep 16, more STAT reads at once than a department's emergency rooms send.
    stat_reserved_share: float = Field(default=0.25, ge=0, lt=1)

    default_language: Language = "en"  # the language of reports and pages when a request names none (en, zh)
    connect_timeout_s: float = Field(default=5.0, gt=0)  # to open a connection to a backend
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
    # The clinical indication's share of the report model's context, in its tokens; longer is a 400. The cpu
    # profile's 2048 tokens hold the report budget (1024), the longest prompt (~700, Chinese) and this.
    max_indication_tokens: int = Field(default=256, ge=1)

    # A report whose free text states a finding otherwise than stage one (gateway/clinical/consistency.py):
    # `withhold` it as an invalid report is (fail closed: partial, the report stage's warning names each
    # contradiction), or `mark` it (kept, with the contradictions in the answer, a warning and a caution line
    # heading the narrative). Either way they are counted (gateway_report_contradictions_total).
    report_consistency: ConsistencyPolicy = "withhold"

    # A streamed cxr-report sends an SSE comment this often while its report is written (sent once validated).
    stream_keepalive_s: float = Field(default=10.0, gt=0)

    # Mutual TLS (with GATEWAY_TLS_CERT_FILE): client certificates signed by this CA are verified and name a
    # client of the clients file by their subject (`certificate_subjects`); a client may still use a key
    # unless a certificate is required.
    tls_client_ca_file: Path | None = None
    tls_client_cert_required: bool = False
    # The CA that signed https backends' certificates (GATEWAY_<ROLE>_URL=https://...); default: the system's.
    backend_ca_file: Path | None = None
    # Origins whose pages may call the API from a browser (CORS), comma-separated; none by default.
    cors_origins: Annotated[list[str], NoDecode] = []
    # file:// image URLs are refused unless they resolve under this folder.
    image_folder: Path | None = None
    # http(s) image URLs would make the gateway fetch from the network: off unless an operator opts in.
    # Hosts that http(s) image URLs may name (comma-separated; e.g. the PACS's WADO host): the gateway would fetch
    # from them. None by default; never this machine or a link-local address (gateway/images.py).
    remote_image_hosts: Annotated[list[str], NoDecode] = []
    remote_image_timeout_s: float = Field(default=10.0, gt=0)

    @field_validator("api_keys", "cors_origins", "oidc_algorithms", "remote_image_hosts", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return [k.strip() for k in value.split(",") if k.strip()] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _fail_fast(self) -> GatewaySettings:
        for key in self.all_api_keys():
            if len(key) < 16:
                raise ValueError("every API key must be at least 16 characters")
        if self.clients_file is not None and not self.clients_file.is_file():
            raise ValueError(f"GATEWAY_CLIENTS_FILE {self.clients_file} does not exist")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("GATEWAY_TLS_CLIENT_CA_FILE needs GATEWAY_TLS_CERT_FILE: client certificates come with TLS")
        if self.tls_client_cert_required and self.tls_client_ca_file is None:
            raise ValueError("GATEWAY_TLS_CLIENT_CERT_REQUIRED needs GATEWAY_TLS_CLIENT_CA_FILE")
        for ca_file in (self.tls_client_ca_file, self.backend_ca_file):
            if ca_file is not None and not ca_file.is_file():
                raise ValueError(f"CA file {ca_file} does not exist")
        if self.oidc_issuer is not None:
            self._check_oidc()
        if (self.review_url is None) != (self.review_api_key is None):
            raise ValueError("GATEWAY_REVIEW_URL and GATEWAY_REVIEW_API_KEY go together (the bridge's review API)")
        for origin in self.cors_origins:
            if not origin.startswith(("https://", "http://")) or origin.count("/") != 2:
                raise ValueError(f"GATEWAY_CORS_ORIGINS: {origin!r} is not an origin (scheme://host[:port])")
        if self.image_folder is not None and not self.image_folder.is_dir():
            raise ValueError(f"GATEWAY_IMAGE_FOLDER {self.image_folder} is not a folder")
        for syslog_file in (self.audit_syslog_ca_file, self.audit_syslog_cert_file, self.audit_syslog_key_file):
            if syslog_file is not None and not syslog_file.is_file():
                raise ValueError(f"audit repository TLS file {syslog_file} does not exist")
        if self.audit_key_file.resolve().is_relative_to(self.audit_dir.resolve()):
            raise ValueError("GATEWAY_AUDIT_KEY_FILE must not be inside GATEWAY_AUDIT_DIR: the key is kept apart from the trail")
        return self

    def _check_oidc(self) -> None:
        refused = [alg for alg in self.oidc_algorithms if alg.lower() == "none" or alg.upper().startswith("HS")]
        if refused or not self.oidc_algorithms:
            raise ValueError(f"GATEWAY_OIDC_ALGORITHMS: only asymmetric algorithms (RS*, PS*, ES*, EdDSA), not {refused}")
        if self.oidc_audience is None:
            raise ValueError("GATEWAY_OIDC_AUDIENCE is needed with GATEWAY_OIDC_ISSUER: tokens for other APIs are refused")
        if not self.oidc_role_permissions:
            raise ValueError("GATEWAY_OIDC_ROLE_PERMISSIONS is needed with GATEWAY_OIDC_ISSUER: no role would permit anything")
        if self.oidc_jwks_file is not None and not self.oidc_jwks_file.is_file():
            raise ValueError(f"GATEWAY_OIDC_JWKS_FILE {self.oidc_jwks_file} does not exist")

    def audit_repository(self) -> tuple[str, int] | None:
        if self.audit_syslog_address is None:
            return None
        host, _, port = self.audit_syslog_address.rpartition(":")
        return host.strip("[]"), int(port)

    def backends(self) -> dict[Role, BackendRole]:
        return {Role.CLASSIFIER: self.classifier, Role.FRACTURE: self.fracture, Role.REPORT: self.report}

    def probe_policy(self) -> ProbePolicy:
        return ProbePolicy(fresh_s=self.ready_fresh_s, timeout_s=self.probe_timeout_s)

    def all_api_keys(self) -> list[str]:
        keys = [k.get_secret_value() for k in self.api_keys]
        if self.api_keys_file is not None:
            keys += [line.strip() for line in self.api_keys_file.read_text().splitlines() if line.strip()]
        return keys
