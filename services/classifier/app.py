"""Classifier worker app factory and lifespan: the model, batcher and pools are made once here."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import Scope

from services.classifier import errors, open_inference, openapi
from services.classifier.batcher import DynamicBatcher
from services.classifier.metrics import WorkerMetrics
from services.classifier.model import OnnxClassifier
from services.classifier.routes import endpoint_label, router
from services.classifier.service import ClassifierService, ProbeSettings
from services.classifier.settings import ClassifierSettings
from services.contract.asgi import BodySizeLimit, Exchange, HeaderSizeLimit, RequestObserver

log = logging.getLogger("classifier")


def create_app(settings: ClassifierSettings | None = None) -> FastAPI:
    settings = settings or ClassifierSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        model = await asyncio.to_thread(
            OnnxClassifier,
            settings.model_path,
            settings.providers,
            settings.intra_op_threads,
            settings.spin_wait,
        )
        metrics = WorkerMetrics()
        batcher = DynamicBatcher(
            model.run,
            metrics,
            max_batch_size=settings.max_batch_size,
            max_wait_s=settings.max_wait_ms / 1000,
            max_queue=settings.max_queue,
            timeout_s=settings.request_timeout_s,
        )
        pool = ThreadPoolExecutor(settings.preprocess_threads, thread_name_prefix="preprocess")
        app.state.settings = settings
        app.state.metrics = metrics
        app.state.service = ClassifierService(
            settings.model_name or model.metadata.name,
            model,
            batcher,
            pool,
            settings.dicom_policy(),
            ProbeSettings(settings.ready_fresh_s, settings.probe_timeout_s),
        )
        batcher.start()
        log.info(
            "ready",
            extra={
                "fields": {
                    "model": app.state.service.name,
                    "provider": model.provider,
                    "port": settings.port,
                    "max_batch_size": settings.max_batch_size,
                    "max_wait_ms": settings.max_wait_ms,
                    "clinical_use": model.card.clinical_use,
                }
            },
        )
        try:
            yield
        finally:
            await batcher.stop()
            pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="cxr-serve classifier worker", lifespan=lifespan)
    errors.install(app)
    openapi.install(app)
    app.include_router(open_inference.router)
    app.include_router(router)
    app.add_middleware(
        HeaderSizeLimit, max_bytes=settings.max_header_bytes, reject=lambda reason: errors.error_response(431, reason)
    )
    app.add_middleware(RequestObserver, on_done=_observe)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        reject=lambda reason: errors.error_response(413, reason),
    )
    return app


def _observe(scope: Scope, exchange: Exchange) -> None:
    """Per-request log line and counter: id, route, status, latency; never the body."""
    endpoint = endpoint_label(exchange.path)
    scope["app"].state.metrics.requests.labels(endpoint, str(exchange.status)).inc()
    log.info("request", extra={"fields": exchange.log_fields(endpoint=endpoint)})
