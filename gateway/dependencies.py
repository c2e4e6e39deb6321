"""The gateway's resources, made once in the lifespan, and the dependencies that hand them to routes."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from gateway.admission import Admission
from gateway.audit import AuditTrail, key_id
from gateway.backends.open_inference import ClassifierBackend
from gateway.backends.openai_compatible import ChatBackend
from gateway.catalog import Catalog
from gateway.errors import AuthenticationFailed
from gateway.images import ImagePolicy
from gateway.metrics import GatewayMetrics
from gateway.pipeline.stages import Pipeline
from gateway.settings import GatewaySettings
from gateway.ui import Page


@dataclass(frozen=True)
class Gateway:
    settings: GatewaySettings
    api_keys: tuple[str, ...]
    catalog: Catalog
    pipeline: Pipeline
    admission: Admission  # every route's one way to a backend slot
    classifier: ClassifierBackend
    chat_backends: dict[str, ChatBackend]  # by served model name: pass-through targets
    image_policy: ImagePolicy
    metrics: GatewayMetrics
    page: Page  # the web page at /ui
    audit: AuditTrail


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway  # made once in the lifespan
    return gateway


GatewayDep = Annotated[Gateway, Depends(_gateway)]


def require_api_key(request: Request, gateway: GatewayDep) -> None:
    """When any key is configured, every /v1 call needs `Authorization: Bearer <key>`; the audit trail gets its id."""
    if not gateway.api_keys:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationFailed("missing API key: send 'Authorization: Bearer <key>'")
    if not any(hmac.compare_digest(token.encode(), key.encode()) for key in gateway.api_keys):
        raise AuthenticationFailed("invalid API key")
    request.state.actor = key_id(token)
