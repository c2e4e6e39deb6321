"""All request and response schemas of the gateway, on one base model.

The chat schemas follow OpenAI's Chat Completions API closely enough for the
official `openai` SDK; `cxr` is the one extra top-level field, which the SDK
keeps (`response.model_extra["cxr"]` / `response.cxr`).
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.clinical.abstention import FindingAssessment
from gateway.clinical.consistency import Contradiction
from gateway.clinical.content import Language
from gateway.clinical.rules import CodedText
from gateway.clinical.structured import StructuredReport
from services.contract.classification import Classification
from services.contract.dicom import DicomReferences
from services.contract.roles import Role
from services.contract.version import VERSION

# "error": the report stage failed (backend down or broke off, or output that failed validation); the
# answer then carries the "report unavailable" notice, `cxr.status` "partial", and a stream an error event.
FinishReason = Literal["stop", "length", "error"]


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


class StreamOptions(GatewayModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class FhirOptions(GatewayModel):
    """`fhir` on a cxr-report request: answer with a FHIR R4 Bundle too (`fhir` beside `cxr`).

    The references are the caller's, put into the Bundle as given and never logged.
    """

    model_config = ConfigDict(extra="forbid")
    subject: str | None = Field(default=None, max_length=200, description="Patient/<id> or Group/<id>")
    encounter: str | None = Field(default=None, max_length=200, description="Encounter/<id>")
    imaging_study: str | None = Field(default=None, max_length=200, description="ImagingStudy/<id>")


class Addressed(GatewayModel):
    """What routes a chat request: its `model`, read before anything else. A pass-through's body goes to its
    model server unchanged and that server validates it (its 400 is relayed with its status); the routes the
    gateway answers itself validate the body whole (ChatRequest)."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1, max_length=256)
    metadata: dict[str, Any] | None = None  # its `priority` (stat | routine) is read: admission, and the engine's
    priority: Any = None  # vLLM's own scheduling field, which only the gateway sets (from metadata.priority)


class ChatRequest(GatewayModel):
    """A chat request to a route the gateway answers itself: `cxr-report` reads these fields.

    Fields of OpenAI's API that `cxr-report` cannot honour are accepted here only to be
    refused with a 400 naming them (gateway/routes/chat.py), never silently ignored.
    """

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=256)
    messages: list[ChatMessage] = Field(min_length=1, max_length=256)
    stream: bool = False
    stream_options: StreamOptions | None = None
    language: Language | None = None  # sent by the SDK through extra_body
    # metadata={"language": "zh"} names the language; {"priority": "stat"} makes it a STAT read (default routine).
    metadata: dict[str, str] | None = None
    response_format: ResponseFormat | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=32768)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=32768)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int | None = Field(default=None, ge=1, le=128)
    tools: list[Any] | None = None
    tool_choice: Any = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    fhir: FhirOptions | None = None  # sent by the SDK through extra_body


# --- the merged pipeline result -----------------------------------------------------------


class FractureResult(GatewayModel):
    text: str = Field(description="ChexFract's answer, verbatim")
    suspected: bool
    evidence: list[str]


class ModelInfo(GatewayModel):
    role: Role
    name: str
    sha256: str | None
    clinical_use: bool
    description: str
    licence: str | None = Field(description="from the model card; None without a card")
    commercial_use: bool = Field(description="whether the licence allows commercial use; False when unknown")


class Provenance(GatewayModel):
    """What produced this answer, machine-readable (EU AI Act Art. 50(2) marking): the content is AI-generated."""

    ai_generated: Literal[True] = True
    models: list[ModelInfo]
    engines: dict[str, str] = Field(description="per role, the serving engine and its version as the backend reports it")
    prompt_sha256: str = Field(description="the report prompt template used (its language)")
    schema_sha256: str = Field(description="the structured report's JSON schema")
    rules_sha256: str = Field(description="rules.yaml: the rule tables and wording, as reviewed")


class StageWarning(GatewayModel):
    """An optional stage that failed: which, and why (the backend's own reason, named)."""

    stage: Role
    message: str


class StageTiming(GatewayModel):
    started_ms: float = Field(description="from the start of the pipeline")
    duration_ms: float
    ok: bool


class CxrFindings(GatewayModel):
    """Stage one (classifier ∥ ChexFract, rules applied), known before the report is written.

    A stream sends it as `cxr_findings` in its first chunk so a viewer can show the
    classification while the report is still being written; the final chunk's `cxr`
    (which repeats these fields) is the answer.
    """

    language: Language
    source: DicomReferences | None = Field(default=None, description="set when the X-ray was a DICOM file")
    classification: Classification
    fracture: FractureResult | None
    risk_level: CodedText
    confidence_interpretation: CodedText
    recommendations: list[str]
    assessments: list[FindingAssessment]
    timings_ms: dict[str, StageTiming]
    warnings: list[StageWarning]
    disclaimer: str


class CxrResult(CxrFindings):
    status: Literal["complete", "partial"]
    report_available: bool
    structured_report: StructuredReport | None = Field(
        description="the report model's output, validated against the schema; None when it failed (fail closed)"
    )
    report_contradictions: list[Contradiction] = Field(
        description="where the report's text states a finding otherwise than stage one; empty when it agrees. "
        "Under the default policy such a report is withheld (structured_report None), else kept and marked"
    )
    models: list[ModelInfo]
    provenance: Provenance


# --- chat completions response --------------------------------------------------------------


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


class AssistantMessage(GatewayModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(GatewayModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: FinishReason = "stop"


class Usage(GatewayModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
        )


class ChatCompletion(GatewayModel):
    id: str = Field(default_factory=completion_id)
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[Choice]
    usage: Usage = Usage()
    cxr: CxrResult | None = None
    fhir: dict[str, Any] | None = Field(default=None, description="a FHIR R4 Bundle, when the request asked for one")


class Delta(GatewayModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(GatewayModel):
    index: int = 0
    delta: Delta
    finish_reason: FinishReason | None = None


class ChatCompletionChunk(GatewayModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    cxr_findings: CxrFindings | None = None
    cxr: CxrResult | None = None
    fhir: dict[str, Any] | None = None


# --- models list ------------------------------------------------------------------------------------


class ModelCardOut(GatewayModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "cxr-serve"
    served_by: str = f"cxr-serve {VERSION}"  # the release answering: the same in the OpenAPI document and the images
    route: str
    clinical_use: bool
    description: str
    licence: str | None
    commercial_use: bool


class ModelList(GatewayModel):
    object: Literal["list"] = "list"
    data: list[ModelCardOut]


# --- native analyze endpoint and health -------------------------------------------------------------


class AnalyzeResponse(GatewayModel):
    report: str
    usage: Usage
    cxr: CxrResult


class BackendHealth(GatewayModel):
    ready: bool
    url: str
    detail: str


class ReadyResponse(GatewayModel):
    ready: bool
    backends: dict[str, BackendHealth]
