"""POST /v1/chat/completions, routed by `model`: the X-ray pipeline, the classifier, or a vLLM pass-through."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from gateway.catalog import Route
from gateway.clinical import LANGUAGES, Language
from gateway.dependencies import Gateway, GatewayDep
from gateway.errors import InvalidRequest, ModelNotFound
from gateway.images import load_xray
from gateway.pipeline import Findings
from gateway.protocol import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    Choice,
    ChunkChoice,
    Delta,
)

router = APIRouter()


def parse_chat_request(body: bytes) -> ChatRequest:
    try:
        return ChatRequest.model_validate_json(body)
    except ValidationError as error:
        first = error.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise InvalidRequest(f"invalid request: {param or 'body'}: {first['msg']}", param=param) from None


def check_language(requested: str | None, default: Language) -> Language:
    language = requested or default
    if language not in LANGUAGES:
        raise InvalidRequest(f"language must be one of {', '.join(LANGUAGES)}", param="language")
    return language


@router.post("/v1/chat/completions")
async def chat_completions(request: Request, gateway: GatewayDep):
    body = await request.body()
    chat = parse_chat_request(body)
    route = gateway.catalog.route(chat.model)
    request.state.model = chat.model if route else "unknown"
    if route is None:
        known = ", ".join(gateway.catalog.routes)
        raise ModelNotFound(f"model {chat.model!r} does not exist; available: {known}", param="model")
    if route is Route.PASSTHROUGH:
        return await _passthrough(gateway, chat.model, body)
    if route is Route.CLASSIFIER:
        return await _classify(gateway, chat)
    return await _pipeline(gateway, chat)


async def _passthrough(gateway: Gateway, model: str, body: bytes) -> StreamingResponse:
    relayed = await gateway.chat_backends[model].relay(body, {"content-type": "application/json"})
    return StreamingResponse(relayed.body, status_code=relayed.status, media_type=relayed.content_type)


async def _classify(gateway: Gateway, chat: ChatRequest) -> ChatCompletion:
    xray = await load_xray(chat, gateway.image_policy)
    result = await gateway.classifier.classify(xray.image)
    content = json.dumps({**result.model_dump(), "model": gateway.catalog.models["classifier"].model_dump()})
    return ChatCompletion(model=chat.model, choices=[Choice(message=AssistantMessage(content=content))])


async def _pipeline(gateway: Gateway, chat: ChatRequest):
    requested = chat.language or (chat.metadata or {}).get("language")
    language = check_language(requested, gateway.settings.default_language)
    xray = await load_xray(chat, gateway.image_policy)
    pipeline = gateway.pipeline
    if chat.stream:
        findings = await pipeline.analyze(xray, language)  # errors here still get their own status
        return StreamingResponse(_sse(gateway, chat.model, findings), media_type="text/event-stream")
    report, cxr = await pipeline.run(xray, language)
    wants_json = chat.response_format is not None and chat.response_format.type == "json_object"
    content = json.dumps({**cxr.model_dump(), "report": report}, ensure_ascii=False) if wants_json else report
    return JSONResponse(
        ChatCompletion(model=chat.model, choices=[Choice(message=AssistantMessage(content=content))], cxr=cxr).model_dump()
    )


async def _sse(gateway: Gateway, model: str, findings: Findings) -> AsyncIterator[str]:
    """OpenAI-style chunks: the report as vLLM streams it, then `cxr` in the final chunk, then [DONE]."""
    base = {"id": ChatCompletion(model=model, choices=[]).id, "created": int(time.time()), "model": model}

    def chunk(delta: Delta, finish: str | None = None, **extra) -> str:
        payload = ChatCompletionChunk(**base, choices=[ChunkChoice(delta=delta, finish_reason=finish)], **extra)
        return f"data: {payload.model_dump_json(exclude_none=True)}\n\n"

    yield chunk(Delta(role="assistant", content=""))
    produced = False
    async for delta in gateway.pipeline.stream_report(findings):
        produced = True
        yield chunk(Delta(content=delta))
    report_ok = produced and not any(w.startswith("report:") for w in findings.warnings)
    if not produced:
        yield chunk(Delta(content=gateway.pipeline.clinical.text("report_unavailable", findings.language)))
    cxr = gateway.pipeline.result(findings, report_available=report_ok)
    yield chunk(Delta(), finish="stop", cxr=cxr)
    yield "data: [DONE]\n\n"
