"""Classifier worker settings (environment variables prefixed CLASSIFIER_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.contract.jsonlog import LogSettings
from services.contract.limits import InputLimits
from services.contract.serving import ServingSettings


class ClassifierSettings(BaseSettings, InputLimits, ServingSettings, LogSettings):  # limits: body, headers, pixels, DICOM; TLS
    model_config = SettingsConfigDict(env_prefix="CLASSIFIER_", frozen=True)

    model_path: Path = Path("models/pneumonia-classifier/model.onnx")  # the ONNX model (model.json beside it)
    # The name clients use in /v2/models/{name} (as vLLM's --served-model-name); default: the metadata's name.
    model_name: str | None = None
    host: str = "127.0.0.1"  # the address it listens on (0.0.0.0 in a container)
    port: int = Field(default=8001, ge=1, le=65535)  # Open Inference Protocol over HTTP, and /metrics

    # Execution providers to try, in order; the first that loads is used and reported.
    providers: tuple[str, ...] = ("CUDAExecutionProvider", "CPUExecutionProvider")
    intra_op_threads: int = Field(default=0, ge=0, description="0: ONNX Runtime's default (all cores)")
    # Spinning threads burn the cores that co-located vLLM servers need (cpu profile turns it off).
    spin_wait: bool = True

    # Dynamic batching: a batch runs when it holds max_batch_size images or its first has waited max_wait_ms.
    max_batch_size: int = Field(default=32, ge=1, le=1024)
    max_wait_ms: float = Field(default=5.0, ge=0, le=1000)
    max_queue: int = Field(default=256, ge=1, description="requests waiting; beyond it: 503 + Retry-After")
    request_timeout_s: float = Field(default=30.0, gt=0, le=600)  # a request not answered by then: 504
    preprocess_threads: int = Field(default=2, ge=1, le=64)  # decoding and resizing, off the event loop

    # Readiness runs one blank tensor through ONNX Runtime at most once per ready_fresh_s (none while real
    # inferences succeed); one not done within probe_timeout_s makes the worker not ready.
    ready_fresh_s: float = Field(default=5.0, gt=0)
    probe_timeout_s: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _fail_fast(self) -> ClassifierSettings:
        if not self.model_path.is_file():
            raise ValueError(f"CLASSIFIER_MODEL_PATH {self.model_path} does not exist; run `make setup`")
        if self.max_queue < self.max_batch_size:
            raise ValueError("CLASSIFIER_MAX_QUEUE must be at least CLASSIFIER_MAX_BATCH_SIZE")
        return self
