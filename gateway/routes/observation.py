"""What every request leaves behind: one log line and one count when it is done and, for the paths that
touch an X-ray or a model, an audit record on disk before the last byte of the answer. Never bodies,
prompts, report text or patient identifiers."""

from __future__ import annotations

import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.audit import AuditEvent, AuditNote, AuditTrail, outcome_of
from gateway.routes.backend_calls import STATE_KEY as BACKEND_CALLS
from services.contract.asgi import Exchange

log = logging.getLogger("gateway")


def observe(scope: Scope, exchange: Exchange) -> None:
    """One log line and one count per request: id, model, status, latency, the ids of its backend calls
    (gateway/routes/backend_calls.py); never bodies or text."""
    state = scope.get("state", {})
    model = state.get("model", path_label(exchange.path))
    gateway = getattr(scope["app"].state, "gateway", None)
    if gateway is not None:
        gateway.metrics.requests.labels(model, str(exchange.status)).inc()
    fields = exchange.log_fields(path=path_label(exchange.path), model=model)
    calls = {BACKEND_CALLS: state[BACKEND_CALLS]} if state.get(BACKEND_CALLS) else {}
    log.info("request", extra={"fields": {**fields, **_outcome(state.get("audit")), **calls}})


def _outcome(note: AuditNote | None) -> dict[str, Any]:
    """What the route noted for the log line: the priority it read, and a pipeline answer's outcome (complete or
    partial) with the stages that failed."""
    if note is None:
        return {}
    noted = {"priority": note.priority, "outcome": note.outcome, "failed_stages": note.failed_stages}
    return {name: value for name, value in noted.items() if value}


AUDITED_PATHS = frozenset({"/v1/chat/completions", "/v1/analyze", "/ui/preview"})
REVIEWS = "/v1/reviews"  # and every path below it (gateway/routes/reviews.py)
# A review path's UIDs never reach the trail: it records the route's template, and the study as its hash.
_REVIEW_TEMPLATES = {1: REVIEWS, 4: REVIEWS + "/{study}/{series}/{sop}", 5: REVIEWS + "/{study}/{series}/{sop}/image"}


def audited_endpoint(path: str) -> str | None:
    """The endpoint an audit record names for `path`; None for a path that is not audited."""
    if path in AUDITED_PATHS:
        return path
    if path == REVIEWS or path.startswith(REVIEWS + "/"):
        return _REVIEW_TEMPLATES.get(len(path.removeprefix("/v1/").strip("/").split("/")), REVIEWS + "/…")
    return None


class Audited:
    """Writes the audit record of an audited path before the answer's last message goes out, so that no
    answer is complete without its record on disk; a request that ends without one (the client left, an
    error) is recorded as it ends. Inside the request observer (the request id) and outside access (a
    refused credential is recorded too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = audited_endpoint(scope["path"]) if scope["type"] == "http" else None
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        status, recorded = 500, False

        async def send_after_record(message: Message) -> None:
            nonlocal status, recorded
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body") and not recorded:
                recorded = True
                await _record(scope, endpoint, status)
            await send(message)

        try:
            await self.app(scope, receive, send_after_record)
        finally:
            if not recorded:
                await _record(scope, endpoint, status)


async def _record(scope: Scope, endpoint: str, status: int) -> None:
    trail: AuditTrail = scope["app"].state.gateway.audit
    state = scope.get("state", {})
    note: AuditNote | None = state.get("audit")
    study = note.study_uid if note is not None else None
    event = AuditEvent(
        request_id=state.get("request_id", ""),
        actor=state.get("actor", "anonymous"),
        endpoint=endpoint,
        status=status,
        outcome=outcome_of(status, note),
        models=note.models if note is not None else [],
        study=trail.study_hash(study) if study else None,
        review=note.review if note is not None else None,
    )
    await trail.record(event)


_OPS_PATHS = ("/health", "/ready", "/metrics", "/v1/models", "/v1/analyze", "/v1/chat/completions")


def path_label(path: str) -> str:
    """The path as logs, metrics and spans name it: a route's template, never a UID it carries."""
    if path == "/ui" or path.startswith("/ui/"):
        return "/ui"
    if path == REVIEWS or path.startswith(REVIEWS + "/"):
        return REVIEWS
    return path if path in _OPS_PATHS else "other"
