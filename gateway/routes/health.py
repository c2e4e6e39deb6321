"""Operations endpoints: liveness, readiness with per-backend detail, Prometheus metrics. No auth."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.backends.protocols import Backend
from gateway.dependencies import GatewayDep
from gateway.protocol import BackendHealth, ReadyResponse
from services.contract.roles import Role

router = APIRouter(tags=["operations"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", response_model=ReadyResponse)
async def ready(gateway: GatewayDep, response: Response) -> ReadyResponse:
    pipeline = gateway.pipeline
    backends: dict[Role, Backend] = {
        Role.CLASSIFIER: pipeline.classifier,
        Role.FRACTURE: pipeline.fracture,
        Role.REPORT: pipeline.report,
    }
    probes = await asyncio.gather(*(backend.ready() for backend in backends.values()))
    detail = {
        name: BackendHealth(ready=ok, url=backend.url, detail=why)
        for (name, backend), (ok, why) in zip(backends.items(), probes, strict=True)
    }
    all_ready = all(item.ready for item in detail.values())
    response.status_code = 200 if all_ready else 503
    return ReadyResponse(ready=all_ready, backends=detail)


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(gateway: GatewayDep) -> Response:
    return Response(generate_latest(gateway.metrics.registry), media_type=CONTENT_TYPE_LATEST)
