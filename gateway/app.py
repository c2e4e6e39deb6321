"""Gateway app factory and lifespan: HTTP clients, backends, pipeline and metrics are made once here."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx2
import openai
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from gateway import openapi, ui
from gateway.admission import Admission, ConcurrencyLimit
from gateway.audit import AuditTrail, load_key
from gateway.audit_syslog import SyslogShipper, SyslogTarget, tls_context
from gateway.backends.base import FailureTranslator
from gateway.backends.health import CircuitBreaker
from gateway.backends.open_inference import ClassifierBackend
from gateway.backends.openai_compatible import ChatBackend
from gateway.catalog import Catalog, Route, check_commercial_use, model_info, read_card
from gateway.clinical.abstention import PublishedFigures
from gateway.clinical.content import load as load_clinical
from gateway.dependencies import Gateway
from gateway.errors import HeadersTooLarge, PayloadTooLarge
from gateway.identity import ClientsSource
from gateway.images import ImagePolicy
from gateway.marking import AiDisclosure
from gateway.metrics import GatewayMetrics
from gateway.oidc import OidcConfig, OpenIdProvider
from gateway.pipeline.stages import Pipeline, PipelineConfig
from gateway.provenance import EngineVersions
from gateway.reviews import ReviewDesk
from gateway.routes import access, admin, analyze, chat, errors, health, models, observation, reviews
from gateway.routes import ui as ui_routes
from gateway.routes.backend_calls import BackendCallLog, call_id_hook
from gateway.routes.traced import RequestSpans
from gateway.settings import BackendRole, GatewaySettings
from gateway.tracing import gateway_tracer
from services.contract.asgi import BodySizeLimit, HeaderSizeLimit, RequestObserver
from services.contract.classifier_model import ModelMetadata
from services.contract.modelcard import ModelCard
from services.contract.roles import Role
from services.contract.version import VERSION

log = logging.getLogger("gateway")


def _http_client(role: Role, backend: BackendRole, connect_timeout_s: float, ca_file: Path | None) -> httpx2.AsyncClient:
    """One pooled client per backend; the read timeout bounds a whole answer, not just the connect. An https
    backend is verified against `ca_file` (GATEWAY_BACKEND_CA_FILE) when set, else the system's CAs."""
    return httpx2.AsyncClient(
        base_url=backend.root_url,
        verify=ssl.create_default_context(cafile=ca_file) if ca_file is not None else True,
        timeout=httpx2.Timeout(backend.timeout_s, connect=connect_timeout_s),
        # Idle connections expire before the backends' own keep-alive timeout (uvicorn: 5 s), so the
        # gateway never reuses a connection the server is closing (seen as ReadError in the fault tests).
        limits=httpx2.Limits(
            max_connections=backend.max_concurrency, max_keepalive_connections=backend.max_concurrency, keepalive_expiry=2.0
        ),
        trust_env=False,  # never route patient data through a proxy from the environment
        event_hooks={"request": [call_id_hook(role)]},  # each call's own X-Request-ID (gateway/routes/backend_calls.py)
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
    tracer = stack.enter_context(gateway_tracer(s.otlp_traces_endpoint))  # shut down (flushed) last
    backends = s.backends()
    https = {
        role: await stack.enter_async_context(_http_client(role, b, s.connect_timeout_s, s.backend_ca_file))
        for role, b in backends.items()
    }
    limits = {role: ConcurrencyLimit(role, b.max_concurrency, s.stat_reserved_share) for role, b in backends.items()}
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
        consistency=s.report_consistency,
    )
    engines = EngineVersions({str(backend.name): backend.engine_version for backend in (classifier, fracture, report)})
    admission = Admission(limits)
    trail = AuditTrail(s.audit_dir, load_key(s.audit_key_file), s.audit_max_bytes)
    figures = published_figures(cards)
    pipeline = Pipeline(classifier, fracture, report, admission, content, catalog, figures, engines, config, metrics, tracer)
    return Gateway(
        settings=s,
        identity=ClientsSource(s.clients_file, s.all_api_keys()),
        oidc=await _openid_provider(s, stack),
        catalog=catalog,
        pipeline=pipeline,
        admission=admission,
        classifier=classifier,
        chat_backends={s.fracture.model: fracture, s.report.model: report},
        image_policy=ImagePolicy(
            s.max_body_bytes,
            s.max_image_pixels,
            s.image_folder,
            frozenset(host.lower() for host in s.remote_image_hosts),
            s.remote_image_timeout_s,
            s.dicom_policy(),
        ),
        metrics=metrics,
        tracer=tracer,
        page=ui.load(),
        audit=trail,
        audit_shipper=_shipper(s, trail, metrics),
        reviews=await _review_desk(s, stack),
    )


async def _review_desk(settings: GatewaySettings, stack: AsyncExitStack) -> ReviewDesk | None:
    if settings.review_url is None or settings.review_api_key is None:
        return None
    http = httpx2.AsyncClient(timeout=settings.review_timeout_s, trust_env=False)
    await stack.enter_async_context(http)
    return ReviewDesk(http, settings.review_url, settings.review_api_key.get_secret_value())


async def _openid_provider(settings: GatewaySettings, stack: AsyncExitStack) -> OpenIdProvider | None:
    if settings.oidc_issuer is None or settings.oidc_audience is None:
        return None
    verify = ssl.create_default_context(cafile=settings.oidc_ca_file) if settings.oidc_ca_file else True
    http = httpx2.AsyncClient(timeout=settings.connect_timeout_s, verify=verify, trust_env=False)
    await stack.enter_async_context(http)
    jwks = json.loads(settings.oidc_jwks_file.read_text()) if settings.oidc_jwks_file is not None else None
    config = OidcConfig(
        issuer=settings.oidc_issuer,
        client_id=settings.oidc_client_id,
        audience=settings.oidc_audience,
        redirect_url=settings.oidc_redirect_url,
        algorithms=tuple(settings.oidc_algorithms),
        roles_claim=settings.oidc_roles_claim,
        name_claim=settings.oidc_name_claim,
        sites_claim=settings.oidc_sites_claim,
        role_permissions=settings.oidc_role_permissions,
        leeway_s=settings.oidc_leeway_s,
        jwks_url=settings.oidc_jwks_url,
        jwks_document=jwks,
    )
    provider = OpenIdProvider(config, http)
    await provider.start()
    return provider


def _shipper(settings: GatewaySettings, trail: AuditTrail, metrics: GatewayMetrics) -> SyslogShipper | None:
    repository = settings.audit_repository()
    if repository is None:
        return None
    tls = tls_context(settings.audit_syslog_ca_file, settings.audit_syslog_cert_file, settings.audit_syslog_key_file)
    target = SyslogTarget(*repository, tls=tls, retry_s=settings.audit_syslog_retry_s, timeout_s=settings.connect_timeout_s)
    shipper = SyslogShipper(trail, target)
    metrics.watch_unshipped(shipper)
    return shipper


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
            gateway = app.state.gateway = await build_gateway(settings, stack)
            background = [access.watch(gateway.identity)]
            if gateway.audit_shipper is not None:
                background.append(gateway.audit_shipper.run())
            for task in [asyncio.create_task(work) for work in background]:
                stack.callback(task.cancel)
            log.info(
                "ready",
                extra={
                    "fields": {
                        "port": settings.port,
                        "auth": not gateway.identity.clients.open,
                        "routes": {name: route.value for name, route in gateway.catalog.routes.items()},
                    }
                },
            )
            yield

    app = FastAPI(title="cxr-serve gateway", version=VERSION, lifespan=lifespan)
    errors.install(app)
    openapi.install(app)
    app.include_router(health.router)
    app.include_router(admin.router)
    app.include_router(ui_routes.router)  # the page itself needs no key; its calls to /v1 do
    for module in (models, chat, analyze, reviews):
        app.include_router(module.router)
    app.add_middleware(AiDisclosure)
    app.add_middleware(access.Access, reject=errors.error_response)  # who, and their limits, before any route
    app.add_middleware(observation.Audited)  # outside access: a refused credential is recorded too
    # CORS outside access (a preflight carries no key); closed by default: without the header a browser
    # shows no other site's page the answers.
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type", "x-request-id"],
            expose_headers=["x-request-id", "retry-after"],
        )
    app.add_middleware(BackendCallLog)  # inside the observer, whose log line lists the calls
    app.add_middleware(RequestSpans)  # inside the observer: the span carries the request id
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
