"""One span per request (gateway/tracing.py), a child of the client's W3C `traceparent` when it sends one.

Named `<method> <route>` by the route's template (`observation.path_label`: never a study's UID), with the
request id, model and status as attributes; a 5xx answer marks it as an error. While tracing is off the
tracer records nothing and no context is passed on.
"""

from __future__ import annotations

from opentelemetry.trace import SpanKind, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.routes.observation import path_label
from gateway.tracing import PROPAGATOR


class RequestSpans:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gateway = getattr(scope["app"].state, "gateway", None) if scope["type"] == "http" else None
        if gateway is None:  # not HTTP, or before the lifespan made the tracer
            await self.app(scope, receive, send)
            return
        carrier = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        route = path_label(scope["path"])
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        name = f"{scope['method']} {route}"
        with gateway.tracer.start_as_current_span(name, context=PROPAGATOR.extract(carrier), kind=SpanKind.SERVER) as span:
            try:
                await self.app(scope, receive, send_noting_status)
            finally:
                state = scope.get("state", {})
                span.set_attribute("http.request.method", scope["method"])
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                span.set_attribute("cxr.request_id", state.get("request_id", ""))
                span.set_attribute("cxr.model", state.get("model", route))
                if status >= 500:
                    span.set_status(StatusCode.ERROR)
