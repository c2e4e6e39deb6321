"""HTTP routes of the worker beside the Open Inference Protocol (open_inference.py): /classify and /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.formparsers import MultiPartException

from services.classifier import protocol
from services.classifier.dependencies import Body, Metrics, Service
from services.classifier.errors import BadRequest
from services.contract.asgi import parse_form

router = APIRouter()


async def _image_bytes(request: Request, body: bytes) -> bytes:
    """The raw body, or the multipart field `file` (the seeds' upload form)."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return body
    try:
        form = await parse_form(request.headers, body)
    except MultiPartException as error:
        raise BadRequest(f"malformed multipart body: {error.message}") from None
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise BadRequest("multipart body has no file field named 'file'")
    return await upload.read()


@router.post("/classify", response_model=protocol.ClassifyResponse)
async def classify(request: Request, body: Body, service: Service) -> protocol.ClassifyResponse:
    result = await service.classify(await _image_bytes(request, body))
    model = service.model
    return protocol.ClassifyResponse(
        **dict(result.classification),
        model=protocol.ModelInfo(
            name=service.name,
            version=model.metadata.version,
            sha256=model.sha256,
            provider=model.provider,
            clinical_use=model.card.clinical_use,
        ),
        latency_ms=result.latency_ms,
    )


@router.get("/metrics", responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}, "description": "Prometheus"}})
async def metrics(worker_metrics: Metrics) -> Response:
    return Response(generate_latest(worker_metrics.registry), media_type=CONTENT_TYPE_LATEST)


def endpoint_label(path: str) -> str:
    """A bounded label for metrics: model names in paths are not echoed from clients."""
    for prefix in ("/v2/models/", "/v2/health/"):
        if path.startswith(prefix):
            return prefix + "*" + ("/infer" if path.endswith("/infer") else "")
    return path if path in ("/classify", "/metrics", "/v2", "/v2/repository/index") else "other"
