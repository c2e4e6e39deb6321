"""Bridge settings: environment variables prefixed CXR_BRIDGE_ (CXR_BRIDGE_PORT, CXR_BRIDGE_AE_TITLE, ...)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.contract.jsonlog import LogSettings
from services.contract.limits import DicomLimits

# An AE title: 1 to 16 characters of the default repertoire, no backslash (PS3.5 6.2, AE); not only spaces.
AE_TITLE = r"^[ -\[\]-~]{1,16}$"


class BridgeSettings(BaseSettings, DicomLimits, LogSettings):  # DicomLimits: the same DICOM policy as the gateway's
    model_config = SettingsConfigDict(env_prefix="CXR_BRIDGE_", frozen=True, extra="ignore", hide_input_in_errors=True)

    # The Storage SCP: where modalities, PACS and routers send images (DIMSE C-STORE) and C-ECHO.
    ae_title: str = Field(default="CXRSERVE", pattern=AE_TITLE)
    host: str = "127.0.0.1"
    port: int = Field(default=11112, ge=1, le=65535)
    http_port: int = Field(default=8090, ge=1, le=65535)  # /health, /ready, /metrics (services/bridge/ops.py)
    # Calling AE titles allowed to associate (comma-separated); empty: any. Others are rejected at association.
    allowed_callers: Annotated[list[str], NoDecode] = []
    # A peer silent this long mid-PDU or between PDUs loses its association (a claimed length of 2 GB that never
    # comes, a half-open connection): the thread and the buffer go with it.
    network_timeout_s: float = Field(default=60.0, gt=0)
    # The largest dataset accepted; larger ones are refused with "out of resources" (0xA700).
    max_dataset_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)

    # The spool and the state database (one bridge process per folder).
    state_dir: Path = Path("logs/bridge")

    # The gateway, called like any HIS: /v1/analyze with the instance as it arrived.
    gateway_url: str = "http://127.0.0.1:8080"
    gateway_api_key: SecretStr | None = None
    gateway_ca_file: Path | None = None  # the hospital CA that signed an HTTPS gateway's certificate
    gateway_timeout_s: float = Field(default=600.0, gt=0)
    language: Literal["en", "zh"] = "en"
    concurrency: int = Field(default=2, ge=1, le=64)  # analyses in flight at once
    # Retries while the gateway is away or answers a partial result: base * 2^attempt, at most max, then dead.
    retry_base_s: float = Field(default=5.0, gt=0)
    retry_max_s: float = Field(default=300.0, gt=0)
    max_attempts: int = Field(default=20, ge=1)

    # Results out (services/bridge/destinations.py): each destination is off until its address is set, and has
    # its own outbox rows (services/bridge/outbox.py), retried on the schedule above, then dead-lettered.
    sr_host: str | None = None  # the SR by C-STORE to the PACS: its host, port and AE title
    sr_port: int = Field(default=104, ge=1, le=65535)
    sr_ae_title: str = Field(default="PACS", pattern=AE_TITLE)
    stow_url: str | None = Field(default=None, pattern=r"^https?://")  # the SR by STOW-RS: the PACS's DICOMweb root
    stow_username: str | None = None
    stow_password: SecretStr | None = None
    ris_host: str | None = None  # the ORU^R01 over MLLP to the RIS: its host and port
    ris_port: int = Field(default=2575, ge=1, le=65535)
    ris_application: str = "RIS"  # MSH-5 (MSH-3, the sending application, is the AE title)
    ris_facility: str = ""  # MSH-6
    facility: str = ""  # MSH-4: the sending facility
    # A signed result's DiagnosticReport to the hospital's FHIR server (services/bridge/fhir.py): its base URL
    # (https://fhir.hospital.example/fhir), a bearer token where it asks for one, and the CA of its certificate.
    fhir_url: str | None = Field(default=None, pattern=r"^https?://")
    fhir_token: SecretStr | None = None
    fhir_ca_file: Path | None = None
    # One delivery's deadline: the association or connection, and the answer (C-STORE response, STOW, ACK).
    send_timeout_s: float = Field(default=30.0, gt=0)

    # The radiologists' review (services/bridge/pacs/review_api.py): on the operations port, for the gateway alone,
    # which sends this token (its GATEWAY_REVIEW_API_KEY); off while unset. The PACS it reviews against: CXR_PACS_*.
    review_token: SecretStr | None = None

    @field_validator("allowed_callers", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value

    @field_validator("ae_title")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("an AE title is not only spaces")
        return value

    @field_validator("review_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("the review token must be at least 32 characters (e.g. `openssl rand -hex 32`)")
        return value

    def next_attempt_at(self, attempts: int, now: float) -> float | None:
        """When a failed analysis or delivery is tried again after `attempts` tries; None: never (it is dead)."""
        if attempts + 1 >= self.max_attempts:
            return None
        return now + float(min(self.retry_max_s, self.retry_base_s * 2 ** min(attempts, 30)))
