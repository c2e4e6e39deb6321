"""Where the PACS is, how to log in, and how hard to work: CXR_PACS_* variables (or the CLI's flags)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.contract.dicom import DicomPolicy


class PacsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CXR_PACS_", frozen=True)

    url: str = Field(description="the DICOMweb base URL, e.g. http://pacs:8042/dicom-web")
    username: str | None = None  # HTTP basic authentication at the PACS, where it asks for it
    password: SecretStr | None = None  # ... its password (or _PASSWORD_FILE)
    password_file: Path | None = None  # e.g. a mounted secret
    gateway_url: str = "http://127.0.0.1:8080"  # the gateway that analyses each image
    gateway_api_key: SecretStr | None = None  # the watcher's key at the gateway
    gateway_ca_file: Path | None = None  # the hospital CA that signed an HTTPS gateway's certificate
    language: Literal["en", "zh"] = "en"  # the gateway's languages
    modalities: Annotated[list[str], NoDecode] = sorted(DicomPolicy.modalities)  # the series it analyses
    concurrency: int = Field(default=2, ge=1, le=64)  # images analysed at once
    timeout_s: float = Field(default=600.0, gt=0)  # per image, through the whole pipeline
    # watch: how often to ask, how far back a study's date may lie, and where progress is kept
    poll_interval_s: float = Field(default=30.0, gt=0)
    lookback_days: int = Field(default=7, ge=0)
    state_file: Path = Path("pacs-watch-state.json")
    # The most studies the PACS answers to one QIDO query (Orthanc's LimitFindResults, dcm4chee's limit), or at
    # most it: an answer that reaches it is taken as capped and asked again over narrower date windows.
    # 0: the PACS never caps (pages of 100 by limit/offset). Too high a value misses studies; too low costs queries.
    qido_cap: int = Field(default=100, ge=0)
    retry_max_s: float = Field(default=300.0, gt=0)  # the longest wait between tries when the PACS is down

    @field_validator("modalities", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return [m.strip().upper() for m in value.split(",") if m.strip()] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_password(self) -> PacsSettings:
        if self.password is not None and self.password_file is not None:
            raise ValueError("set CXR_PACS_PASSWORD or CXR_PACS_PASSWORD_FILE, not both")
        if not self.url.startswith(("http://", "https://")):
            raise ValueError("CXR_PACS_URL must be an http(s) DICOMweb base URL")
        return self

    def secret(self) -> str | None:
        if self.password_file is not None:
            return self.password_file.read_text().strip()
        return self.password.get_secret_value() if self.password else None
