"""POST /v1/chat/completions, routed by `model`: the X-ray pipeline, the classifier, or a pass-through.

Thin: parse, check what the route can honour, call the domain, encode JSON or SSE.
"""

from __future__ import annotations

import functools
import json
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ValidationError
from starlette.background import BackgroundTask

from gateway import fhir
from gateway.audit import AuditNote
from gateway.backends.calls import ENGINE_PRIORITY, Sampling
from gateway.backends.openai_compatible import ChatBackend
from gateway.catalog import Route, audited
from gateway.clinical.content import LANGUAGES, Language
from gateway.dependencies import Gateway, GatewayDep, permit
from gateway.errors import GatewayError, InvalidRequest, ModelNotFound, UnsupportedParameter
from gateway.images import load_xray
from gateway.openapi import CHAT_REQUEST_BODY, ERROR_RESPONSES
from gateway.pipeline.events import Accepted, Completed
from gateway.pipeline.stages import PipelineRequest
from gateway.protocol import Addressed, AssistantMessage, ChatCompletion, ChatRequest, Choice
from gateway.routes.cancellation import unless_disconnected
from gateway.routes.streaming import completion, encode_stream, relayed_events, whole_answer_events
from services.contract.priority import Priority
from services.contract.roles import Role
from services.contract.validation import describe, first_problem

router = APIRouter()
Parsed = TypeVar("Parsed", bound=BaseModel)

# Top-level fields `cxr-report` takes besides the ones ChatRequest names: `user` (OpenAI's end-user id)
# is accepted and never forwarded or logged. Anything else is refused rather than silently ignored.
_ACCEPTED_EXTRA = frozenset({"user"})


def parse_body(shape: type[Parsed], body: bytes) -> Parsed:
    try:
        return shape.model_validate_json(body)
    except ValidationError as error:
        param, _ = first_problem(error)
        raise InvalidRequest(f"invalid request: {describe(error, 'body')}", param=param) from None


def check_priority(requested: object, param: str) -> Priority:
    """STAT or routine (the default), as the caller wrote it; anything else is a 400 naming the field."""
    priority = Priority.named(requested) if requested is None or isinstance(requested, str) else None
    if priority is None:
        raise InvalidRequest(f"{param} must be one of {', '.join(Priority)}", param=param)
    return priority


def check_language(requested: str | None, default: Language) -> Language:
    language = next((known for known in LANGUAGES if known == (requested or default)), None)
    if language is None:
        raise InvalidRequest(f"language must be one of {', '.join(LANGUAGES)}", param="language")
    return language


# Why a route answers with a fixed JSON shape rather than a client's schema.
_FIXED_SHAPE = {
    Route.PIPELINE: (
        "the report is always schema-locked (cxr.structured_report); use json_object for the cxr object and report as JSON"
    ),
    Route.CLASSIFIER: "the answer is always the classification as a JSON object",
}


def refuse_unsupported(chat: ChatRequest, route: Route) -> None:
    """OpenAI parameters the pipeline or the classifier cannot honour: a 400 naming each, never a silent 200."""
    what = "the pipeline" if route is Route.PIPELINE else "the classifier"
    checks: list[tuple[str, bool, str]] = [
        ("n", (chat.n or 1) > 1, f"{what} gives one answer per X-ray"),
        ("tools", bool(chat.tools), f"{what} calls no tools"),
        ("tool_choice", chat.tool_choice not in (None, "none"), f"{what} calls no tools"),
        ("logprobs", bool(chat.logprobs) or chat.top_logprobs is not None, f"{what}'s answer has no token log-probabilities"),
        ("response_format", chat.response_format is not None and chat.response_format.type == "json_schema", _FIXED_SHAPE[route]),
    ]
    checks += [(name, True, "unknown parameter") for name in (chat.model_extra or {}) if name not in _ACCEPTED_EXTRA]
    for param, refused, why in checks:
        if refused:
            raise UnsupportedParameter(param, chat.model, why)


def report_options(chat: ChatRequest, limit: int) -> Sampling:
    """What the client set for the report model; what it left unset (None) takes the role's default."""
    budget_param = "max_completion_tokens" if chat.max_completion_tokens is not None else "max_tokens"
    budget = chat.max_completion_tokens or chat.max_tokens
    if budget is not None and budget > limit:
        raise InvalidRequest(f"{budget_param} is {budget}; the report budget is at most {limit}", param=budget_param)
    stop = [chat.stop] if isinstance(chat.stop, str) else list(chat.stop or [])
    return Sampling(max_tokens=budget, temperature=chat.temperature, top_p=chat.top_p, seed=chat.seed, stop=stop)


@router.post("/v1/chat/completions", openapi_extra=CHAT_REQUEST_BODY, responses=ERROR_RESPONSES)
async def chat_completions(request: Request, gateway: GatewayDep) -> Response:
    """OpenAI Chat Completions. `cxr-report` runs the X-ray pipeline; other models are listed by GET /v1/models."""
    body = await request.body()
    addressed = parse_body(Addressed, body)
    model = addressed.model
    route = gateway.catalog.route(model)
    request.state.model = model if route else "unknown"
    if route is None:
        known = ", ".join(gateway.catalog.routes)
        raise ModelNotFound(f"model {model!r} does not exist; available: {known}", param="model")
    permit(request, route.permission, model)
    request.state.audit = AuditNote(models=audited(gateway.catalog.served(model, route)))
    priority = check_priority((addressed.metadata or {}).get("priority"), "metadata.priority")
    request.state.audit.priority = priority
    if route is Route.PASSTHROUGH:
        relayed = _with_engine_priority(addressed, body, priority)
        return await _pass_through(gateway, gateway.chat_backends[model], relayed, priority)
    chat = parse_body(ChatRequest, body)
    refuse_unsupported(chat, route)
    if route is Route.CLASSIFIER:
        answer = await unless_disconnected(request, _classify(gateway, chat, priority))
        if chat.stream:  # the answer exists whole before the first byte: a failure keeps its status
            return StreamingResponse(whole_answer_events(answer, _include_usage(chat)), media_type="text/event-stream")
        return JSONResponse(answer.model_dump())
    return await _pipeline(request, gateway, chat, priority)


def _include_usage(chat: ChatRequest) -> bool:
    return chat.stream_options is not None and chat.stream_options.include_usage


def _with_engine_priority(addressed: Addressed, body: bytes, priority: Priority) -> bytes:
    """A pass-through body as the client wrote it, but for a STAT one's engine priority (gateway/backends/calls.py).
    The engine's own `priority` field is the gateway's to set: a client's would let routine work overtake STAT."""
    if "priority" in addressed.model_fields_set:
        raise InvalidRequest("priority is the gateway's to set: send metadata.priority (stat | routine)", param="priority")
    fields = ENGINE_PRIORITY.get(priority)
    return body if fields is None else json.dumps({**json.loads(body), "priority": fields}).encode()


async def _pass_through(gateway: Gateway, backend: ChatBackend, body: bytes, priority: Priority) -> Response:
    """The client's request to its model, unchanged but for a STAT one's engine priority, and the answer back: a
    stream relayed event by event with the slot held until it ends; a whole answer read first, so that a backend
    failing half-way through is a 502/503 naming it, never a cut 200."""
    admitted = gateway.admission.admit(backend.name, priority=priority)
    try:
        relayed = await backend.relay(body, "application/json")
        if not relayed.content_type.startswith("text/event-stream"):
            whole = b"".join([chunk async for chunk in relayed.body])
            admitted.release()
            return Response(whole, status_code=relayed.status, media_type=relayed.content_type)
    except BaseException:
        admitted.release()
        raise
    # The background release covers a body never iterated (the client left before the first byte).
    return StreamingResponse(
        admitted.holding(relayed_events(relayed.body)),  # a dying stream still ends properly
        status_code=relayed.status,
        media_type=relayed.content_type,
        background=BackgroundTask(admitted.release),
    )


async def _classify(gateway: Gateway, chat: ChatRequest, priority: Priority) -> ChatCompletion:
    xray = await load_xray(chat, gateway.image_policy)
    with gateway.admission.admit(Role.CLASSIFIER, priority=priority):
        result = await gateway.classifier.classify(xray.image, xray.pixels)
    content = json.dumps({**result.model_dump(), "model": gateway.catalog.models[Role.CLASSIFIER].model_dump()})
    return ChatCompletion(model=chat.model, choices=[Choice(message=AssistantMessage(content=content))])


async def _pipeline(request: Request, gateway: Gateway, chat: ChatRequest, priority: Priority) -> Response:
    requested = chat.language or (chat.metadata or {}).get("language")
    language = check_language(requested, gateway.settings.default_language)
    options = report_options(chat, gateway.settings.report.max_tokens_limit)
    subject = fhir.Subject.checked(**chat.fhir.model_dump()) if chat.fhir is not None else None
    # The image is decoded only once the request holds its backend slots (the pipeline calls the loader).
    image = functools.partial(load_xray, chat, gateway.image_policy)
    run = PipelineRequest(image=image, language=language, report=options, priority=priority)
    note: AuditNote = request.state.audit

    def finished(done: Completed) -> dict[str, Any] | None:
        """The audit outcome, and the FHIR Bundle when the request asked for one."""
        note.outcome = done.result.status
        note.failed_stages = [warning.stage for warning in done.result.warnings]
        note.study_uid = done.result.source.study_instance_uid if done.result.source is not None else None
        return fhir.bundle(done.result, done.report, subject) if subject is not None else None

    def failed(_error: GatewayError) -> None:
        note.outcome = "failed"

    if chat.stream:
        events = gateway.pipeline.events(run)
        accepted = await unless_disconnected(request, anext(events))  # 429 and 400 keep their status
        assert isinstance(accepted, Accepted), "the pipeline's first event is always Accepted"
        stream = encode_stream(events, chat.model, _include_usage(chat), finished, failed, gateway.settings.stream_keepalive_s)
        return StreamingResponse(stream, media_type="text/event-stream")
    done = await unless_disconnected(request, gateway.pipeline.collect(run))
    wants_json = chat.response_format is not None and chat.response_format.type == "json_object"
    payload: dict[str, Any] = {**done.result.model_dump(mode="json"), "report": done.report}
    content = json.dumps(payload, ensure_ascii=False) if wants_json else done.report
    answer = completion(chat.model, done, content)
    answer.fhir = finished(done)
    return JSONResponse(answer.model_dump(mode="json"))
