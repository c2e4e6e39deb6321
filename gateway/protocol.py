"""All request and response schemas of the gateway, on one base model.

The chat schemas follow OpenAI's Chat Completions API closely enough for the
official `openai` SDK; `cxr` is the one extra top-level field, which the SDK
keeps (`response.model_extra["cxr"]` / `response.cxr`).
"""

from __future__ import annotations

import time
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.clinical import Language


class GatewayModel(BaseModel):
    model_config = ConfigDict(protected_namespaces=())


# --- errors (OpenAI's error object) -------------------------------------------------


class ErrorDetail(GatewayModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(GatewayModel):
    error: ErrorDetail


# --- chat completions request ---------------------------------------------------------


class ImageURL(GatewayModel):
    url: str = Field(max_length=64 * 1024 * 1024)
    detail: str | None = None


class ContentPart(GatewayModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None
    image_url: ImageURL | None = None


class ChatMessage(GatewayModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[ContentPart] | None = None


class ResponseFormat(GatewayModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text", "json_object", "json_schema"] = "text"


class ChatRequest(GatewayModel):
    """What the gateway reads of a chat request; pass-through models get the original body unchanged."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=256)
    messages: list[ChatMessage] = Field(min_length=1, max_length=256)
    stream: bool = False
    language: Language | None = None  # sent by the SDK through extra_body
    metadata: dict[str, str] | None = None  # or metadata={"language": "zh"}
    response_format: ResponseFormat | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=8192)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=8192)


# --- the merged pipeline result -----------------------------------------------------------


class ClassificationResult(GatewayModel):
    predicted_class: str
    confidence: float
    probabilities: dict[str, float]


class FractureResult(GatewayModel):
    text: str = Field(description="ChexFract's answer, verbatim")
    suspected: bool
    evidence: list[str]


class CodedText(GatewayModel):
    code: str
    text: str


class ModelInfo(GatewayModel):
    role: str
    name: str
    sha256: str | None
    clinical_use: bool
    description: str


class StageTiming(GatewayModel):
    started_ms: float = Field(description="from the start of the pipeline")
    duration_ms: float
    ok: bool


class CxrResult(GatewayModel):
    status: Literal["complete", "partial"]
    language: Language
    classification: ClassificationResult
    fracture: FractureResult | None
    risk_level: CodedText
    confidence_interpretation: CodedText
    recommendations: list[str]
    report_available: bool
    models: list[ModelInfo]
    timings_ms: dict[str, StageTiming]
    warnings: list[str]
    disclaimer: str


# --- chat completions response --------------------------------------------------------------


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


class AssistantMessage(GatewayModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(GatewayModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str = "stop"


class Usage(GatewayModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ChatCompletion(GatewayModel):
    id: str = Field(default_factory=_completion_id)
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[Choice]
    usage: Usage = Usage()
    cxr: CxrResult | None = None


class Delta(GatewayModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(GatewayModel):
    index: int = 0
    delta: Delta
    finish_reason: str | None = None


class ChatCompletionChunk(GatewayModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    cxr: CxrResult | None = None


# --- models list ------------------------------------------------------------------------------------


class ModelCardOut(GatewayModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "cxr-serve"
    route: str
    clinical_use: bool
    description: str


class ModelList(GatewayModel):
    object: Literal["list"] = "list"
    data: list[ModelCardOut]


# --- native analyze endpoint and health -------------------------------------------------------------


class AnalyzeResponse(GatewayModel):
    report: str
    cxr: CxrResult


class BackendHealth(GatewayModel):
    ready: bool
    url: str
    detail: str


class ReadyResponse(GatewayModel):
    ready: bool
    backends: dict[str, BackendHealth]
