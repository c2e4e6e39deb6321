"""The Open Inference Protocol (KServe v2) REST API, as Triton answers it: what `tritonclient.http` calls.

Every model route also exists under `/versions/{version}/`, for the one
version the worker serves. Inference takes JSON tensors or the binary tensor
data extension (services/contract/tensors.py), in either direction; the JSON
header is parsed here rather than by FastAPI's body binding, because a binary
request is not JSON and tritonclient sends no Content-Type.
"""

from __future__ import annotations

from typing import Any

import onnxruntime as ort
from fastapi import APIRouter, Depends, Request, Response

from services.classifier import protocol, triton
from services.classifier.dependencies import Body, KnownModel, Metrics, Service, Settings, known_version
from services.classifier.errors import BadRequest
from services.classifier.service import ClassifierService
from services.contract import tensors

router = APIRouter(prefix="/v2")
VERSIONED = [Depends(known_version)]


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema with its `$defs` inlined, to stand alone inside an OpenAPI operation."""
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    return dict(resolve(schema))


_INFER_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _inlined(protocol.InferenceRequest.model_json_schema())},
            tensors.BINARY_MEDIA_TYPE: {
                "schema": {"type": "string", "format": "binary"},
                "description": f"JSON header then raw little-endian tensors; {tensors.HEADER_LENGTH} gives the header's length",
            },
        },
    }
}


@router.get("/health/live")
async def live() -> dict[str, bool]:
    return {"live": True}


@router.get("/health/ready")
async def ready(service: Service, response: Response) -> dict[str, bool | str]:
    """Ready only when a real tensor runs (services/classifier/service.py); `detail` says why not."""
    is_ready, detail = await service.ready()
    response.status_code = 200 if is_ready else 503
    return {"ready": is_ready, "detail": detail}


@router.get("", response_model=protocol.ServerMetadata)
async def server_metadata() -> protocol.ServerMetadata:
    return protocol.ServerMetadata(
        name="cxr-serve-classifier",
        version="2",
        extensions=["binary_tensor_data", "model_configuration", "statistics"],
    )


@router.post("/repository/index", response_model=list[protocol.RepositoryModel])
async def repository_index(service: Service) -> list[protocol.RepositoryModel]:
    state = "READY" if service.batcher.running else "UNAVAILABLE"
    return [protocol.RepositoryModel(name=service.name, version=service.model.metadata.version, state=state)]


@router.get("/models/stats")
async def all_statistics(service: Service, metrics: Metrics) -> dict[str, Any]:
    return {"model_stats": [metrics.statistics.model_stats(service.name, service.model.metadata.version)]}


@router.get("/models/{name}/versions/{version}/stats", dependencies=VERSIONED)
@router.get("/models/{name}/stats")
async def model_statistics(service: KnownModel, metrics: Metrics) -> dict[str, Any]:
    return {"model_stats": [metrics.statistics.model_stats(service.name, service.model.metadata.version)]}


@router.get("/models/{name}/versions/{version}", response_model=protocol.ModelMetadataResponse, dependencies=VERSIONED)
@router.get("/models/{name}", response_model=protocol.ModelMetadataResponse)
async def model_metadata(service: KnownModel) -> protocol.ModelMetadataResponse:
    model = service.model
    spec = model.metadata.input
    return protocol.ModelMetadataResponse(
        name=service.name,
        versions=[model.metadata.version],
        platform="onnxruntime_onnx",
        inputs=[protocol.TensorMetadata(name=spec.name, datatype="FP32", shape=list(spec.shape(-1)))],
        outputs=[
            protocol.TensorMetadata(name=model.metadata.output_name, datatype="FP32", shape=[-1, len(model.metadata.classes)])
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


@router.get("/models/{name}/versions/{version}/config", dependencies=VERSIONED)
@router.get("/models/{name}/config")
async def model_configuration(service: KnownModel, settings: Settings) -> dict[str, Any]:
    return triton.model_config(
        service.name,
        service.model.metadata,
        max_batch_size=settings.max_batch_size,
        max_wait_ms=settings.max_wait_ms,
        max_queue=settings.max_queue,
        timeout_s=settings.request_timeout_s,
        gpu=service.model.provider == "CUDAExecutionProvider",
    )


@router.get("/models/{name}/versions/{version}/ready", dependencies=VERSIONED)
@router.get("/models/{name}/ready")
async def model_ready(service: KnownModel, response: Response) -> dict[str, bool | str]:
    is_ready, _detail = await service.ready()
    response.status_code = 200 if is_ready else 503
    return {"name": service.name, "ready": is_ready}


_INFER_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {}, tensors.BINARY_MEDIA_TYPE: {}}, "description": "JSON, or JSON then binary tensors"}
}


@router.post("/models/{name}/versions/{version}/infer", dependencies=VERSIONED, openapi_extra=_INFER_DOC, responses=_INFER_ANSWER)
@router.post("/models/{name}/infer", openapi_extra=_INFER_DOC, responses=_INFER_ANSWER)
async def infer(request: Request, body: Body, service: KnownModel) -> Response:
    head, binary = tensors.split(body, request.headers.get(tensors.HEADER_LENGTH))
    call = protocol.InferenceRequest.model_validate_json(head)  # a ValidationError is a 400 (errors.py)
    (spec,) = call.inputs
    service.check_tensor_spec(spec.name, spec.datatype, spec.shape)
    tensor = tensors.read([spec.model_dump()], binary)[spec.name]
    outputs = await service.infer(tensor)
    output = tensors.entry(service.model.metadata.output_name, outputs, binary=_binary_output(call, service))
    header = {"model_name": service.name, "model_version": service.model.metadata.version, "outputs": [output]}
    if call.id is not None:
        header["id"] = call.id
    content, headers = tensors.message(header, [outputs] if "parameters" in output else [])
    return Response(content, headers=headers)


def _binary_output(call: protocol.InferenceRequest, service: ClassifierService) -> bool:
    """Whether the client asked for the output in binary form (per output, or `binary_data_output` for all)."""
    if not call.outputs:
        return bool((call.parameters or {}).get("binary_data_output", False))
    (requested,) = call.outputs
    if requested.name != service.model.metadata.output_name:
        raise BadRequest(f"unknown output {requested.name!r}; this model's output is {service.model.metadata.output_name!r}")
    parameters = requested.parameters or {}
    if parameters.get("classification"):
        raise BadRequest("the classification extension is not supported; ask for the raw output tensor")
    return bool(parameters.get("binary_data", False))
