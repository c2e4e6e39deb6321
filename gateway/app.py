"""Gateway app factory and lifespan: HTTP clients, backends, pipeline and metrics are made once here."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from fastapi import Depends, FastAPI
from starlette.types import Scope

from gateway import clinical, errors
from gateway.backends.base import ConcurrencyLimit
from gateway.backends.open_inference import ClassifierBackend
from gateway.backends.openai_compatible import ChatBackend
from gateway.catalog import Catalog, Route, model_info
from gateway.dependencies import Gateway, require_api_key
from gateway.images import ImagePolicy
from gateway.metrics import GatewayMetrics
from gateway.pipeline import Pipeline, PipelineConfig
from gateway.routes import analyze, chat, health, models
from gateway.settings import GatewaySettings
from services.asgi import BodySizeLimit, Exchange, RequestObserver
from services.classifier.metadata import ModelMetadata

log = logging.getLogger("gateway")


def _client(base_url: str, settings: GatewaySettings, read_timeout_s: float, pool: int) -> httpx.AsyncClient:
    """One pooled client per backend; the read timeout bounds a whole answer, not just the connect."""
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(read_timeout_s, connect=settings.connect_timeout_s),
        limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
        trust_env=False,  # never route patient data through a proxy from the environment
    )


async def build_gateway(settings: GatewaySettings, stack: AsyncExitStack) -> Gateway:
    s = settings
    metrics = GatewayMetrics()
    limits = {
        "classifier": ConcurrencyLimit("classifier", s.classifier_max_concurrency),
        "fracture": ConcurrencyLimit("fracture", s.fracture_max_concurrency),
        "report": ConcurrencyLimit("report", s.report_max_concurrency),
    }
    for name, limit in limits.items():
        metrics.watch_in_flight(name, lambda limit=limit: limit.in_flight)
    pool = stack.enter_context(ThreadPoolExecutor(4, thread_name_prefix="gateway-preprocess"))
    classifier = ClassifierBackend(
        ModelMetadata.read_folder(s.classifier_model_dir),
        await stack.enter_async_context(_client(s.classifier_url, s, s.classifier_timeout_s, s.classifier_max_concurrency)),
        limits["classifier"],
        s.classifier_timeout_s,
        pool,
        s.max_image_pixels,
    )
    fracture = ChatBackend(
        "fracture",
        s.fracture_model,
        await stack.enter_async_context(_client(s.fracture_url, s, s.fracture_timeout_s, s.fracture_max_concurrency)),
        limits["fracture"],
        s.fracture_timeout_s,
    )
    report = ChatBackend(
        "report",
        s.report_model,
        await stack.enter_async_context(_client(s.report_url, s, s.report_timeout_s, s.report_max_concurrency)),
        limits["report"],
        s.report_timeout_s,
    )
    infos = {
        "classifier": model_info("classifier", s.classifier_model, s.classifier_model_dir),
        "fracture": model_info("fracture", s.fracture_model, s.fracture_model_dir),
        "report": model_info("report", s.report_model, s.report_model_dir),
    }
    catalog = Catalog(
        routes={
            s.pipeline_model: Route.PIPELINE,
            s.fracture_model: Route.PASSTHROUGH,
            s.report_model: Route.PASSTHROUGH,
            s.classifier_model: Route.CLASSIFIER,
        },
        models=infos,
    )
    pipeline = Pipeline(
        classifier,
        fracture,
        report,
        clinical.load(),
        list(infos.values()),
        PipelineConfig(s.fracture_max_tokens, s.report_max_tokens),
        metrics,
    )
    return Gateway(
        settings=s,
        api_keys=tuple(s.all_api_keys()),
        catalog=catalog,
        pipeline=pipeline,
        classifier=classifier,
        chat_backends={s.fracture_model: fracture, s.report_model: report},
        image_policy=ImagePolicy(
            s.max_body_bytes, s.max_image_pixels, s.image_folder, s.allow_remote_images, s.remote_image_timeout_s
        ),
        metrics=metrics,
    )


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            app.state.gateway = await build_gateway(settings, stack)
            log.info(
                "ready",
                extra={
                    "fields": {
                        "port": settings.port,
                        "auth": bool(app.state.gateway.api_keys),
                        "routes": {name: route.value for name, route in app.state.gateway.catalog.routes.items()},
                    }
                },
            )
            yield

    app = FastAPI(title="cxr-serve gateway", version="0.1.0", lifespan=lifespan)
    errors.install(app)
    app.include_router(health.router)
    for module in (models, chat, analyze):
        app.include_router(module.router, dependencies=[Depends(require_api_key)])
    app.add_middleware(RequestObserver, on_done=_observe)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        reject=lambda reason: errors.error_response(errors.PayloadTooLarge(reason)),
    )
    return app


def _observe(scope: Scope, exchange: Exchange) -> None:
    """One log line and one count per request: id, model, status, latency; never bodies or text."""
    model = scope.get("state", {}).get("model", exchange.path if exchange.path in _OPS_PATHS else "other")
    gateway = getattr(scope["app"].state, "gateway", None)
    if gateway is not None:
        gateway.metrics.requests.labels(model, str(exchange.status)).inc()
    log.info(
        "request",
        extra={
            "fields": {
                "request_id": exchange.request_id,
                "method": exchange.method,
                "path": _path_label(exchange.path),
                "model": model,
                "status": exchange.status,
                "latency_ms": round(exchange.seconds * 1000, 2),
            }
        },
    )


_OPS_PATHS = ("/health", "/ready", "/metrics", "/v1/models", "/v1/analyze", "/v1/chat/completions")


def _path_label(path: str) -> str:
    return path if path in _OPS_PATHS else "other"
