"""Gateway app factory and lifespan: HTTP clients, backends, pipeline and metrics are made once here."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager

import httpx2
import openai
from fastapi import Depends, FastAPI

from gateway import openapi, ui
from gateway.admission import Admission, ConcurrencyLimit
from gateway.audit import AuditTrail, load_key
from gateway.backends.base import FailureTranslator
from gateway.backends.health import CircuitBreaker
from gateway.backends.open_inference import ClassifierBackend
from gateway.backends.openai_compatible import ChatBackend
from gateway.catalog import Catalog, Route, check_commercial_use, model_info, read_card
from gateway.clinical.abstention import PublishedFigures
from gateway.clinical.content import load as load_clinical
from gateway.dependencies import Gateway, require_api_key
from gateway.errors import HeadersTooLarge, PayloadTooLarge
from gateway.images import ImagePolicy
from gateway.marking import AiDisclosure
from gateway.metrics import GatewayMetrics
from gateway.pipeline.stages import Pipeline, PipelineConfig
from gateway.provenance import EngineVersions
from gateway.routes import analyze, chat, errors, health, models, observation
from gateway.routes import ui as ui_routes
from gateway.settings import BackendRole, GatewaySettings
from services.contract.asgi import BodySizeLimit, HeaderSizeLimit, RequestObserver
from services.contract.classifier_model import ModelMetadata
from services.contract.modelcard import ModelCard
from services.contract.roles import Role

log = logging.getLogger("gateway")


def _http_client(backend: BackendRole, connect_timeout_s: float) -> httpx2.AsyncClient:
    """One pooled client per backend; the read timeout bounds a whole answer, not just the connect."""
    return httpx2.AsyncClient(
        base_url=backend.root_url,
        timeout=httpx2.Timeout(backend.timeout_s, connect=connect_timeout_s),
        # Idle connections expire before the backends' own keep-alive timeout (uvicorn: 5 s), so the
        # gateway never reuses a connection the server is closing (seen as ReadError in the fault tests).
        limits=httpx2.Limits(
            max_connections=backend.max_concurrency, max_keepalive_connections=backend.max_concurrency, keepalive_expiry=2.0
        ),
        trust_env=False,  # never route patient data through a proxy from the environment
    )


def _sdk_client(backend: BackendRole, http: httpx2.AsyncClient) -> openai.AsyncOpenAI:
    """The openai SDK over the backend's pooled client; retries are off (a retry would double a generation)."""
    return openai.AsyncOpenAI(
        base_url=f"{backend.root_url}/v1",
        api_key=backend.key() or "no-key",  # the SDK requires a value; a server without keys ignores it
        max_retries=0,
        timeout=http.timeout,
        http_client=http,
    )


def _failures(role: Role, settings: GatewaySettings, metrics: GatewayMetrics) -> FailureTranslator:
    """The one path of every call to a backend: its circuit breaker, watched by /metrics, and its error translation."""
    breaker = CircuitBreaker(
        role,
        settings.breaker_failures,
        settings.breaker_cooldown_s,
        on_refused=metrics.circuit_refusals.labels(role).inc,
    )
    metrics.watch_circuit(role, breaker)
    return FailureTranslator(role, settings.backends()[role].timeout_s, metrics.upstream_errors, breaker)


def _chat_backend(role: Role, http: httpx2.AsyncClient, settings: GatewaySettings, metrics: GatewayMetrics) -> ChatBackend:
    backend = settings.backends()[role]
    failures = _failures(role, settings, metrics)
    sdk = _sdk_client(backend, http)
    return ChatBackend(role, backend.model, http, sdk, failures, backend.key(), settings.probe_policy())


async def build_gateway(settings: GatewaySettings, stack: AsyncExitStack) -> Gateway:
    s = settings
    content = load_clinical()
    metrics = GatewayMetrics()
    backends = s.backends()
    https = {role: await stack.enter_async_context(_http_client(b, s.connect_timeout_s)) for role, b in backends.items()}
    limits = {role: ConcurrencyLimit(role, b.max_concurrency) for role, b in backends.items()}
    for role, limit in limits.items():
        metrics.watch_in_flight(role, limit)
    pool = stack.enter_context(ThreadPoolExecutor(4, thread_name_prefix="gateway-preprocess"))
    metadata = ModelMetadata.read_folder(s.classifier.model_dir)
    content.check_classes(metadata.classes)
    classifier = ClassifierBackend(
        s.classifier.model,
        metadata,
        https[Role.CLASSIFIER],
        _failures(Role.CLASSIFIER, s, metrics),
        pool,
        s.max_image_pixels,
        s.probe_policy(),
    )
    fracture, report = (_chat_backend(role, https[role], s, metrics) for role in (Role.FRACTURE, Role.REPORT))
    cards = {role: read_card(b.card_file) for role, b in backends.items()}
    infos = {role: model_info(role, b.model, b.card_file, cards[role]) for role, b in backends.items()}
    if s.commercial_use:
        check_commercial_use(list(infos.values()))
    catalog = Catalog(
        routes={
            s.pipeline_model: Route.PIPELINE,
            s.fracture.model: Route.PASSTHROUGH,
            s.report.model: Route.PASSTHROUGH,
            s.classifier.model: Route.CLASSIFIER,
        },
        models=infos,
    )
    config = PipelineConfig(
        fracture=s.fracture.sampling(),
        report=s.report.sampling(),
        max_indication_tokens=s.max_indication_tokens,
        deadline_s=s.request_deadline_s,
    )
    engines = EngineVersions({str(backend.name): backend.engine_version for backend in (classifier, fracture, report)})
    admission = Admission(limits)
    pipeline = Pipeline(
        classifier, fracture, report, admission, content, catalog, published_figures(cards), engines, config, metrics
    )
    return Gateway(
        settings=s,
        api_keys=tuple(s.all_api_keys()),
        catalog=catalog,
        pipeline=pipeline,
        admission=admission,
        classifier=classifier,
        chat_backends={s.fracture.model: fracture, s.report.model: report},
        image_policy=ImagePolicy(
            s.max_body_bytes,
            s.max_image_pixels,
            s.image_folder,
            s.allow_remote_images,
            s.remote_image_timeout_s,
            s.dicom_policy(),
        ),
        metrics=metrics,
        page=ui.load(),
        audit=AuditTrail(s.audit_dir, load_key(s.audit_dir, s.audit_secret()), s.audit_max_bytes),
    )


def published_figures(cards: dict[Role, ModelCard | None]) -> PublishedFigures:
    def figure(role: Role, metric: str) -> float | None:
        card = cards[role]
        found = card.metric(metric) if card is not None else None
        return found.value if found is not None else None

    return PublishedFigures(
        classifier_accuracy=figure(Role.CLASSIFIER, "val_accuracy"),
        fracture_recall=figure(Role.FRACTURE, "fracture_recall"),
        fracture_precision=figure(Role.FRACTURE, "fracture_precision"),
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

    app = FastAPI(title="cxr-serve gateway", version="0.2.0", lifespan=lifespan)
    errors.install(app)
    openapi.install(app)
    app.include_router(health.router)
    app.include_router(ui_routes.router)  # the page itself needs no key; its calls to /v1 do
    for module in (models, chat, analyze):
        app.include_router(module.router, dependencies=[Depends(require_api_key)])
    app.add_middleware(AiDisclosure)
    app.add_middleware(  # inside the observer: a refusal is still logged with its request id
        HeaderSizeLimit,
        max_bytes=settings.max_header_bytes,
        reject=lambda reason: errors.error_response(HeadersTooLarge(reason)),
    )
    app.add_middleware(RequestObserver, on_done=observation.observe)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        reject=lambda reason: errors.error_response(PayloadTooLarge(reason)),
    )
    return app
