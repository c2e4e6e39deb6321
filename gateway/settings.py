"""Gateway settings: environment variables prefixed GATEWAY_, or a `.env`-style file.

`make run` derives the backend URLs and served names from deploy/models.yaml
(services/launcher/commands.py: gateway_env); compose and Kubernetes set the
same variables. Unsafe values fail at start-up, not at the first request.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gateway.clinical import Language


@dataclass(frozen=True)
class BackendSettings:
    role: str
    url: str
    model: str
    model_dir: str
    timeout_s: float
    max_concurrency: int


class GatewaySettings(BaseSettings):
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

    # Comma-separated keys, or a file with one key per line (e.g. a Kubernetes Secret).
    api_keys: Annotated[list[SecretStr], NoDecode] = []
    api_keys_file: Path | None = None

    default_language: Language = "en"
    connect_timeout_s: float = Field(default=5.0, gt=0)
    classifier_timeout_s: float = Field(default=30.0, gt=0)
    fracture_timeout_s: float = Field(default=120.0, gt=0)
    report_timeout_s: float = Field(default=300.0, gt=0)
    # In-flight requests per backend; beyond it the gateway answers 429 + Retry-After.
    classifier_max_concurrency: int = Field(default=128, ge=1)
    fracture_max_concurrency: int = Field(default=64, ge=1)
    report_max_concurrency: int = Field(default=64, ge=1)

    fracture_max_tokens: int = Field(default=96, ge=1, le=4096)
    report_max_tokens: int = Field(default=256, ge=1, le=8192)

    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(default=40_000_000, ge=1)
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
        if self.image_folder is not None and not self.image_folder.is_dir():
            raise ValueError(f"GATEWAY_IMAGE_FOLDER {self.image_folder} is not a folder")
        return self

    def backend(self, role: str) -> BackendSettings:
        """One backend's settings, gathered from the flat GATEWAY_<ROLE>_* fields."""
        return BackendSettings(
            role=role,
            url=getattr(self, f"{role}_url"),
            model=getattr(self, f"{role}_model"),
            model_dir=getattr(self, f"{role}_model_dir"),
            timeout_s=getattr(self, f"{role}_timeout_s"),
            max_concurrency=getattr(self, f"{role}_max_concurrency"),
        )

    def all_api_keys(self) -> list[str]:
        keys = [k.get_secret_value() for k in self.api_keys]
        if self.api_keys_file is not None:
            keys += [line.strip() for line in self.api_keys_file.read_text().splitlines() if line.strip()]
        return keys
