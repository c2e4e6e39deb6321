"""Pure ASGI middlewares shared by the gateway and the classifier worker.

Pure ASGI rather than Starlette's BaseHTTPMiddleware: they never buffer or
re-wrap a streamed response, and an exception raised while the app reads the
body reaches the app's own error handlers instead of an exception group.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData, Headers
from starlette.formparsers import MultiPartParser
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(ValueError):
    pass


class BodySizeLimit:
    """Refuses bodies over `max_bytes`, declared (answered at once) or streamed (raised in the app).

    A chunked body is counted as it arrives and `BodyTooLarge` is raised inside
    the app as soon as it passes the limit, so the app's own error mapping
    answers (413 in its error shape) and nothing beyond the limit is buffered.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, reject: Callable[[str], ASGIApp]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.reject = reject  # builds the app's own 413 response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            reason = f"body of {int(declared)} bytes exceeds the limit of {self.max_bytes} bytes"
            await self.reject(reason)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise BodyTooLarge(f"body exceeds the limit of {self.max_bytes} bytes")
            return message

        await self.app(scope, counted, send)


class HeaderSizeLimit:
    """Refuses requests whose headers together exceed `max_bytes` (431), before the app reads anything.

    uvicorn's httptools parser sets no limit of its own: a 1 MB Authorization header was accepted and
    compared against every API key. 16 KiB matches common proxies (nginx: 4 x 8 KiB buffers).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, reject: Callable[[str], ASGIApp]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.reject = reject  # builds the app's own 431 response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = sum(len(name) + len(value) for name, value in scope["headers"])
            if size > self.max_bytes:
                reason = f"request headers of {size} bytes exceed the limit of {self.max_bytes} bytes"
                await self.reject(reason)(scope, receive, send)
                return
        await self.app(scope, receive, send)


@dataclass(frozen=True)
class Exchange:
    """What is safe to log and count about one finished request."""

    request_id: str
    method: str
    path: str
    status: int
    seconds: float

    def log_fields(self, **labels: Any) -> dict[str, Any]:
        """The request log line's fields, the service's own labels (route, model) after the method."""
        return {
            "request_id": self.request_id,
            "method": self.method,
            **labels,
            "status": self.status,
            "latency_ms": round(self.seconds * 1000, 2),
        }


class RequestObserver:
    """Gives every request an id (X-Request-ID accepted and echoed) and reports it when done."""

    def __init__(self, app: ASGIApp, on_done: Callable[[Scope, Exchange], None]) -> None:
        self.app = app
        self.on_done = on_done

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = supplied[:128] if supplied.isprintable() and supplied else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.on_done(scope, Exchange(request_id, scope["method"], scope["path"], status, time.perf_counter() - started))


async def parse_form(headers: Headers, body: bytes, max_fields: int = 4) -> FormData:
    """A multipart body already read (and size-limited) as form data; at most one file.

    Raises starlette's MultiPartException on a malformed body.
    """

    async def replay() -> AsyncGenerator[bytes, None]:
        yield body

    return await MultiPartParser(headers, replay(), max_files=1, max_fields=max_fields).parse()
