"""The gateway's resources, made once in the lifespan, and the dependencies that hand them to routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from opentelemetry.trace import Tracer

from gateway.admission import Admission
from gateway.audit import AuditTrail
from gateway.audit_syslog import SyslogShipper
from gateway.backends.open_inference import ClassifierBackend
from gateway.backends.openai_compatible import ChatBackend
from gateway.catalog import Catalog
from gateway.errors import PermissionDenied
from gateway.identity import Caller, ClientsSource, Permission
from gateway.images import ImagePolicy
from gateway.metrics import GatewayMetrics
from gateway.oidc import OpenIdProvider
from gateway.pipeline.stages import Pipeline
from gateway.reviews import ReviewDesk
from gateway.settings import GatewaySettings
from gateway.ui import Page


@dataclass(frozen=True)
class Gateway:
    settings: GatewaySettings
    identity: ClientsSource  # who may call, with what permissions and limits (gateway/routes/access.py checks them)
    oidc: OpenIdProvider | None  # people, through the hospital's OpenID Provider, when one is configured
    catalog: Catalog
    pipeline: Pipeline
    admission: Admission  # every route's one way to a backend slot
    classifier: ClassifierBackend
    chat_backends: dict[str, ChatBackend]  # by served model name: pass-through targets
    image_policy: ImagePolicy
    metrics: GatewayMetrics
    tracer: Tracer  # gateway/tracing.py: records nothing while GATEWAY_OTLP_TRACES_ENDPOINT is unset
    page: Page  # the web page at /ui
    audit: AuditTrail
    audit_shipper: SyslogShipper | None  # to the audit repository, when one is configured
    reviews: ReviewDesk | None  # the radiologists' review through the bridge, when GATEWAY_REVIEW_URL is set


async def _gateway(request: Request) -> Gateway:
    """Async, as every dependency here: FastAPI runs a plain `def` dependency in its thread pool, a thread
    hand-off per request on the hot path (`python -m scripts.bench_gateway_overhead --profile` showed it)."""
    gateway: Gateway = request.app.state.gateway  # made once in the lifespan
    return gateway


GatewayDep = Annotated[Gateway, Depends(_gateway)]


def caller_of(request: Request) -> Caller:
    """The caller, as gateway/routes/access.py authenticated it."""
    caller: Caller = request.state.caller
    return caller


def permit(request: Request, permission: Permission, model: str | None = None) -> None:
    """PermissionDenied unless the caller has `permission` (and, when named, may use `model`)."""
    caller = caller_of(request)
    if not caller.may(permission, model):
        raise PermissionDenied(caller.name, permission, model if caller.may(permission) else None)
