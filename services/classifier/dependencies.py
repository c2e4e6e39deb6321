"""What routes get injected: the service made once in the lifespan, its metrics, the body, the addressed model.

Every dependency is `async def`: FastAPI runs a plain `def` one in its thread pool, a thread hand-off per
request (tests/test_architecture.py checks it).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.classifier.errors import UnknownModel
from services.classifier.metrics import WorkerMetrics
from services.classifier.service import ClassifierService
from services.classifier.settings import ClassifierSettings


async def _service(request: Request) -> ClassifierService:
    service: ClassifierService = request.app.state.service  # made once in the lifespan
    return service


async def _metrics(request: Request) -> WorkerMetrics:
    metrics: WorkerMetrics = request.app.state.metrics
    return metrics


async def _settings(request: Request) -> ClassifierSettings:
    settings: ClassifierSettings = request.app.state.settings
    return settings


Service = Annotated[ClassifierService, Depends(_service)]
Metrics = Annotated[WorkerMetrics, Depends(_metrics)]
Settings = Annotated[ClassifierSettings, Depends(_settings)]


async def _known_model(name: str, service: Service) -> ClassifierService:
    if name != service.name:
        raise UnknownModel(f"unknown model {name!r}; this worker serves {service.name!r}")
    return service


KnownModel = Annotated[ClassifierService, Depends(_known_model)]


async def known_version(version: str, service: KnownModel) -> None:
    """For the protocol's `/versions/{version}/` routes: the one version this worker serves."""
    if version != service.model.metadata.version:
        raise UnknownModel(f"model {service.name!r} has no version {version!r}; it serves {service.model.metadata.version!r}")


async def _body(request: Request) -> bytes:
    return await request.body()  # size-limited by the BodySizeLimit middleware


Body = Annotated[bytes, Depends(_body)]
