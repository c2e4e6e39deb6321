"""Each backend call's own X-Request-ID, listed on the gateway's request log line, and its trace context.

A backend's log lines are found from the client's request id in two steps: the gateway's line for that id
lists `backend_calls` (`<role>:<uuid>`), and each backend logs the uuid it was given. The gateway never
passes the client's id itself: llama.cpp's server refuses an X-Request-ID that is not a UUID (its
starlette-context RequestIdPlugin answers 400), vLLM takes the header as its engine's request id (which two
calls must not share, and a client may reuse an id), and a client's id is the client's to choose, not a
backend's to log. A fresh uuid4 per call satisfies all three.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar

import httpx2
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.tracing import PROPAGATOR
from services.contract.roles import Role

# The calls of the request being served; None outside a request (start-up checks, readiness probes).
_CALLS: ContextVar[list[str] | None] = ContextVar("backend_calls", default=None)
STATE_KEY = "backend_calls"  # in the request's scope state, read by the request log line


class BackendCallLog:
    """Gives each request a list of its backend calls, in its scope state and in the context its calls inherit
    (the pipeline's tasks copy the context, and with it this same list)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        calls: list[str] = []
        scope.setdefault("state", {})[STATE_KEY] = calls
        token = _CALLS.set(calls)
        try:
            await self.app(scope, receive, send)
        finally:
            _CALLS.reset(token)


def call_id_hook(role: Role) -> Callable[[httpx2.Request], Awaitable[None]]:
    """The request hook of `role`'s client: a fresh X-Request-ID on every call, noted for the request's log line."""

    async def tag(request: httpx2.Request) -> None:
        call_id = str(uuid.uuid4())
        request.headers["X-Request-ID"] = call_id
        PROPAGATOR.inject(request.headers)  # the current span's `traceparent`; nothing while tracing is off
        calls = _CALLS.get()
        if calls is not None:
            calls.append(f"{role.value}:{call_id}")

    return tag
