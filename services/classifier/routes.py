"""HTTP routes of the worker: Open Inference Protocol v2, /classify and /metrics. Thin by design."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import onnxruntime as ort
from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.formparsers import MultiPartException

from services.classifier import protocol
from services.classifier.errors import BadRequest, UnknownModel
from services.classifier.metrics import WorkerMetrics
from services.classifier.service import ClassifierService
from services.contract.asgi import parse_form

router = APIRouter()


def _service(request: Request) -> ClassifierService:
    service: ClassifierService = request.app.state.service  # made once in the lifespan
    return service


def _metrics(request: Request) -> WorkerMetrics:
    metrics: WorkerMetrics = request.app.state.metrics
    return metrics


Service = Annotated[ClassifierService, Depends(_service)]
Metrics = Annotated[WorkerMetrics, Depends(_metrics)]


def _known_model(name: str, service: Service) -> ClassifierService:
    if name != service.name:
        raise UnknownModel(f"unknown model {name!r}; this worker serves {service.name!r}")
    return service


KnownModel = Annotated[ClassifierService, Depends(_known_model)]


async def _body(request: Request) -> bytes:
    return await request.body()  # size-limited by the BodySizeLimit middleware


Body = Annotated[bytes, Depends(_body)]


@router.get("/v2/health/live")
async def live() -> dict[str, bool]:
    return {"live": True}


@router.get("/v2/health/ready")
async def ready(service: Service, response: Response) -> dict[str, bool]:
    is_ready = service.batcher.running
    response.status_code = 200 if is_ready else 503
    return {"ready": is_ready}


@router.get("/v2", response_model=protocol.ServerMetadata)
async def server_metadata() -> protocol.ServerMetadata:
    return protocol.ServerMetadata(name="cxr-serve-classifier", version="2")


@router.get("/v2/models/{name}", response_model=protocol.ModelMetadataResponse)
async def model_metadata(service: KnownModel) -> protocol.ModelMetadataResponse:
    model = service.model
    spec = model.metadata.input
    return protocol.ModelMetadataResponse(
        name=service.name,
        versions=[model.metadata.version],
        platform="onnxruntime_onnx",
        inputs=[protocol.TensorMetadata(name=spec.name, datatype="FP32", shape=list(spec.shape(-1)))],
        outputs=[
            protocol.TensorMetadata(
                name=model.metadata.output_name,
                datatype="FP32",
                shape=[-1, len(model.metadata.classes)],
            )
        ],
        parameters={
            "provider": model.provider,
            "runtime": f"onnxruntime {ort.__version__}",
            "sha256": model.sha256,
            "classes": list(model.metadata.classes),
            "output": model.metadata.output,
            "preprocessing": spec.model_dump(),
            "clinical_use": model.card.clinical_use,
            "description": model.card.description,
        },
    )


@router.get("/v2/models/{name}/ready")
async def model_ready(service: KnownModel) -> dict[str, bool | str]:
    return {"name": service.name, "ready": True}


@router.post("/v2/models/{name}/infer", response_model=protocol.InferenceResponse)
async def infer(request: protocol.InferenceRequest, service: KnownModel) -> protocol.InferenceResponse:
    tensor_in = request.inputs[0]
    tensor = service.check_tensor(tensor_in.name, tensor_in.datatype, tensor_in.shape, tensor_in.data)
    outputs = await service.infer(tensor)
    return protocol.InferenceResponse(
        model_name=service.name,
        model_version=service.model.metadata.version,
        id=request.id,
        outputs=[
            protocol.ResponseOutput(
                name=service.model.metadata.output_name,
                shape=list(outputs.shape),
                datatype="FP32",
                data=np.asarray(outputs, dtype=np.float32).ravel().tolist(),
            )
        ],
    )


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
        predicted_class=result.predicted_class,
        confidence=result.confidence,
        probabilities=result.probabilities,
        model=protocol.ModelInfo(
            name=service.name,
            version=model.metadata.version,
            sha256=model.sha256,
            provider=model.provider,
            clinical_use=model.card.clinical_use,
        ),
        latency_ms=result.latency_ms,
    )


@router.get("/metrics")
async def metrics(worker_metrics: Metrics) -> Response:
    return Response(generate_latest(worker_metrics.registry), media_type=CONTENT_TYPE_LATEST)


def endpoint_label(path: str) -> str:
    """A bounded label for metrics: model names in paths are not echoed from clients."""
    for prefix in ("/v2/models/", "/v2/health/"):
        if path.startswith(prefix):
            return prefix + "*" + ("/infer" if path.endswith("/infer") else "")
    return path if path in ("/classify", "/metrics", "/v2") else "other"
