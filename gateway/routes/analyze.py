"""POST /v1/analyze: the seeds' upload form (multipart `file`, optional `language`, `indication`)."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter, Request
from starlette.datastructures import FormData
from starlette.formparsers import MultiPartException

from gateway.dependencies import GatewayDep
from gateway.errors import ImageRejected, InvalidRequest
from gateway.images import load_upload
from gateway.openapi import ANALYZE_REQUEST_BODY, ERROR_RESPONSES
from gateway.pipeline import PipelineRequest
from gateway.protocol import AnalyzeResponse
from gateway.routes.cancellation import unless_disconnected
from gateway.routes.chat import check_language
from services.contract.asgi import parse_form

router = APIRouter()
MAX_INDICATION_CHARS = 2000


def _text_field(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) and value else None


@router.post("/v1/analyze", response_model=AnalyzeResponse, openapi_extra=ANALYZE_REQUEST_BODY, responses=ERROR_RESPONSES)
async def analyze(request: Request, gateway: GatewayDep) -> AnalyzeResponse:
    """Upload one chest X-ray (multipart `file`); the answer is the report and the merged `cxr` result."""
    request.state.model = gateway.settings.pipeline_model
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidRequest("send the X-ray as multipart/form-data with a field named 'file'", param="file")
    try:
        form = await parse_form(request.headers, await request.body())
    except MultiPartException as error:
        raise InvalidRequest(f"malformed multipart body: {error.message}") from None
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise ImageRejected("multipart body has no file field named 'file'", param="file")
    language = check_language(_text_field(form, "language"), gateway.settings.default_language)
    xray = await load_upload(await upload.read(), gateway.image_policy)
    xray = dataclasses.replace(xray, text=(_text_field(form, "indication") or "")[:MAX_INDICATION_CHARS])
    done = await unless_disconnected(request, gateway.pipeline.collect(PipelineRequest(xray=xray, language=language)))
    return AnalyzeResponse(report=done.report, usage=done.usage, cxr=done.result)
