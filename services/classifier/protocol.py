"""Request and response schemas: the Open Inference Protocol (KServe v2) REST API and /classify.

Field names follow the protocol so that Triton Inference Server can stand in
for this worker with no client change.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.contract.classification import Classification


class ProtocolModel(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ErrorResponse(ProtocolModel):
    error: str


class ServerMetadata(ProtocolModel):
    name: str
    version: str
    extensions: list[str] = []


class TensorMetadata(ProtocolModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadataResponse(ProtocolModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    # Extension (allowed by the protocol): what the worker runs and how.
    parameters: dict[str, Any] = {}


class RequestInput(ProtocolModel):
    name: str
    shape: list[int] = Field(max_length=8)
    datatype: str
    # Absent when the values follow the JSON header (`parameters.binary_data_size`; services/contract/tensors.py).
    data: list[float] | None = None
    parameters: dict[str, Any] | None = None


class RequestOutput(ProtocolModel):
    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(ProtocolModel):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1, max_length=1)
    outputs: list[RequestOutput] | None = Field(default=None, max_length=1)  # the model has one output


class RepositoryModel(ProtocolModel):
    name: str
    version: str
    state: Literal["READY", "UNAVAILABLE"]


class ModelInfo(ProtocolModel):
    name: str
    version: str
    sha256: str
    provider: str
    clinical_use: bool


class ClassifyResponse(Classification):
    """The classification (services/contract/classification.py), with the model that made it and how long it took."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: ModelInfo
    latency_ms: float
