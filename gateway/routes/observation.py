"""What every request leaves behind when it is done: one log line, one count and, for the X-ray paths, an
audit record. Never bodies, prompts, report text or patient identifiers."""

from __future__ import annotations

import logging
from typing import Any

from starlette.types import Scope

from gateway.audit import AuditEvent, AuditNote, AuditTrail, outcome_of
from services.contract.asgi import Exchange

log = logging.getLogger("gateway")


def observe(scope: Scope, exchange: Exchange) -> None:
    """One log line and one count per request: id, model, status, latency; never bodies or text.

    Requests that carry an X-ray (or ask a model) also get an audit record.
    """
    state = scope.get("state", {})
    model = state.get("model", _path_label(exchange.path))
    gateway = getattr(scope["app"].state, "gateway", None)
    if gateway is not None:
        gateway.metrics.requests.labels(model, str(exchange.status)).inc()
        if exchange.path in AUDITED_PATHS:
            gateway.audit.append(_audit_event(gateway.audit, state, exchange))
    fields = exchange.log_fields(path=_path_label(exchange.path), model=model)
    log.info("request", extra={"fields": {**fields, **_outcome(state.get("audit"))}})


def _outcome(note: AuditNote | None) -> dict[str, Any]:
    """A pipeline answer's outcome for the log line: complete or partial, and the stages that failed."""
    if note is None or note.outcome is None:
        return {}
    return {"outcome": note.outcome, "failed_stages": note.failed_stages} if note.failed_stages else {"outcome": note.outcome}


AUDITED_PATHS = frozenset({"/v1/chat/completions", "/v1/analyze", "/ui/preview"})


def _audit_event(trail: AuditTrail, state: dict[str, Any], exchange: Exchange) -> AuditEvent:
    note: AuditNote | None = state.get("audit")
    study = note.study_uid if note is not None else None
    return AuditEvent(
        request_id=exchange.request_id,
        actor=state.get("actor", "anonymous"),
        endpoint=exchange.path,
        status=exchange.status,
        outcome=outcome_of(exchange.status, note),
        models=note.models if note is not None else [],
        study=trail.study_hash(study) if study else None,
    )


_OPS_PATHS = ("/health", "/ready", "/metrics", "/v1/models", "/v1/analyze", "/v1/chat/completions")


def _path_label(path: str) -> str:
    if path == "/ui" or path.startswith("/ui/"):
        return "/ui"
    return path if path in _OPS_PATHS else "other"
