"""POST /v1/analyze: the seeds' upload form (multipart `file`, optional `language`, `indication`)."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter, Request
from starlette.formparsers import MultiPartException

from gateway.dependencies import GatewayDep
from gateway.errors import ImageRejected, InvalidRequest
from gateway.images import load_upload
from gateway.protocol import AnalyzeResponse
from gateway.routes.chat import check_language
from services.asgi import parse_form

router = APIRouter()
MAX_INDICATION_CHARS = 2000


def _text_field(form, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) and value else None


@router.post("/v1/analyze", response_model=AnalyzeResponse)
async def analyze(request: Request, gateway: GatewayDep) -> AnalyzeResponse:
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
    report, cxr = await gateway.pipeline.run(xray, language)
    return AnalyzeResponse(report=report, cxr=cxr)
