"""POST /v1/analyze: the seeds' upload form (multipart `file`, optional `language`, `indication`, `priority`),
JSON or FHIR."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import FormData
from starlette.formparsers import MultiPartException

from gateway import fhir
from gateway.audit import AuditNote
from gateway.catalog import audited
from gateway.dependencies import GatewayDep, permit
from gateway.errors import ImageRejected, InvalidRequest
from gateway.identity import Permission
from gateway.images import XrayInput, load_upload
from gateway.openapi import ANALYZE_REQUEST_BODY, ERROR_RESPONSES
from gateway.pipeline.stages import PipelineRequest
from gateway.protocol import AnalyzeResponse
from gateway.routes.cancellation import unless_disconnected
from gateway.routes.chat import check_language, check_priority
from services.contract.asgi import parse_form

router = APIRouter()
FORM_FIELDS = ("file", "language", "indication", "priority", "subject", "encounter", "imaging_study")


def _text_field(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) and value else None


def wants_fhir(request: Request) -> bool:
    return fhir.FHIR_MEDIA_TYPE in request.headers.get("accept", "")


@router.post("/v1/analyze", response_model=AnalyzeResponse, openapi_extra=ANALYZE_REQUEST_BODY, responses=ERROR_RESPONSES)
async def analyze(request: Request, gateway: GatewayDep) -> Response:
    """Upload one chest X-ray (multipart `file`); the answer is the report and the merged `cxr` result.

    With `Accept: application/fhir+json` the answer is a FHIR R4 Bundle instead (optional form fields
    `subject`, `encounter`, `imaging_study` become its references).
    """
    request.state.model = gateway.settings.pipeline_model
    permit(request, Permission.ANALYZE, gateway.settings.pipeline_model)
    note = AuditNote(models=audited(list(gateway.catalog.models.values())))
    request.state.audit = note
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidRequest("send the X-ray as multipart/form-data with a field named 'file'", param="file")
    try:
        form = await parse_form(request.headers, await request.body(), max_fields=len(FORM_FIELDS))
    except MultiPartException as error:
        raise InvalidRequest(f"malformed multipart body: {error.message}") from None
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise ImageRejected("multipart body has no file field named 'file'", param="file")
    language = check_language(_text_field(form, "language"), gateway.settings.default_language)
    priority = check_priority(_text_field(form, "priority"), "priority")
    note.priority = priority
    subject = fhir.Subject.checked(*(_text_field(form, name) for name in ("subject", "encounter", "imaging_study")))
    image, indication = await upload.read(), _text_field(form, "indication") or ""  # its length: the pipeline's check

    async def load() -> XrayInput:  # called by the pipeline once the request holds its backend slots
        return dataclasses.replace(await load_upload(image, gateway.image_policy), text=indication)

    run = PipelineRequest(image=load, language=language, priority=priority)
    done = await unless_disconnected(request, gateway.pipeline.collect(run))
    note.outcome = done.result.status
    note.failed_stages = [warning.stage for warning in done.result.warnings]
    note.study_uid = done.result.source.study_instance_uid if done.result.source is not None else None
    if wants_fhir(request):
        return JSONResponse(fhir.bundle(done.result, done.report, subject), media_type=fhir.FHIR_MEDIA_TYPE)
    return JSONResponse(AnalyzeResponse(report=done.report, usage=done.usage, cxr=done.result).model_dump(mode="json"))
