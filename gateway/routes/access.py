"""Access: which paths are open, who the caller is, and the caller's own limits, before any route runs.

A pure ASGI middleware, so that a client's concurrency slot is held until its response has been sent in
full (a relayed stream included) and every refusal is answered in the API's error shape and still logged
and audited (it sits inside the request observer). Per-model permissions are checked by the routes
(`gateway.dependencies.permit`), which know the model.

    open to all       /health, /ready (probes), the web page, its assets and its login (its calls to /v1 carry a key
                      or the login's cookie)
    admin             /metrics, /docs, /redoc, /openapi.json, /admin/* (the audit export): not for the hospital network
    any known client  everything else (/v1/*, /ui/preview)
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from contextlib import suppress

from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.errors import AuthenticationFailed, GatewayError, PermissionDenied
from gateway.identity import ANONYMOUS, Caller, Clients, ClientsSource, Permission
from gateway.oidc import OpenIdProvider

OPEN_PATHS = frozenset(
    {"/health", "/ready", "/ui", "/ui/", "/ui/review", "/ui/config.json", "/ui/login", "/ui/callback", "/ui/logout"}
)
SESSION_COOKIE = "cxr_session"  # the page's access token (HttpOnly, SameSite=Strict): gateway/routes/ui.py sets it
OPEN_PREFIXES = ("/ui/static/",)
ADMIN_PATHS = frozenset({"/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
ADMIN_PREFIXES = ("/admin/",)
RELOAD_POLL_S = 2.0
# What a deployment routes from the hospital network (the Kubernetes Ingress): the API, the page, liveness.
# /ready, /metrics, the API documents and /admin/* stay inside: probes and Prometheus reach the pods directly.
EXTERNAL_PATHS = {"/v1": "Prefix", "/ui": "Prefix", "/health": "Exact"}  # path: Ingress pathType


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def is_admin(path: str) -> bool:
    return path in ADMIN_PATHS or path.startswith(ADMIN_PREFIXES)


def bearer_token(scope: Scope) -> str | None:
    value = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def certificate_subject(scope: Scope) -> str | None:
    """The verified client certificate's subject, from the ASGI TLS extension (gateway/server.py)."""
    subject: str | None = scope.get("extensions", {}).get("tls", {}).get("client_cert_name")
    return subject


def session_token(scope: Scope) -> str | None:
    """The web page's login (gateway/oidc.py), from its cookie; not on a request another site started."""
    headers = dict(scope["headers"])
    token = cookie_parser(headers.get(b"cookie", b"").decode("latin-1")).get(SESSION_COOKIE)
    return token if token and headers.get(b"sec-fetch-site", b"same-origin") in (b"same-origin", b"none") else None


async def authenticate(clients: Clients, people: OpenIdProvider | None, scope: Scope) -> Caller:
    """By API key or bearer JWT when one is sent, else by a verified client certificate, else by the page's login."""
    if clients.open and people is None:
        return ANONYMOUS
    token, subject, session = bearer_token(scope), certificate_subject(scope), session_token(scope)
    if token is not None:
        client = clients.authenticate(token)
        if client is not None:
            return client
        if people is None:
            raise AuthenticationFailed("invalid API key")
        return await people.caller(token)
    if subject is not None:
        client = clients.with_certificate(subject)
        if client is None:
            raise AuthenticationFailed(f"the client certificate {subject!r} names no client")
        return client
    if session is not None and people is not None:
        return await people.caller(session)
    raise AuthenticationFailed("missing API key: send 'Authorization: Bearer <key>'")


class Access:
    def __init__(self, app: ASGIApp, reject: Callable[[GatewayError], ASGIApp]) -> None:
        self.app = app
        self.reject = reject  # builds the app's own error response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        gateway = scope["app"].state.gateway
        clients: Clients = gateway.identity.clients
        state = scope.setdefault("state", {})
        if is_open(scope["path"]):
            with suppress(GatewayError):  # the page's own paths show who is signed in, if anyone
                state["caller"] = await authenticate(clients, gateway.oidc, scope)
            await self.app(scope, receive, send)
            return
        try:
            caller = await authenticate(clients, gateway.oidc, scope)
            if is_admin(scope["path"]) and not caller.may(Permission.ADMIN):
                raise PermissionDenied(caller.name, Permission.ADMIN)
            limits = clients.limits_of(caller)
            limits.admit(caller)
        except GatewayError as error:
            await self.reject(error)(scope, receive, send)
            return
        state["caller"], state["actor"] = caller, caller.name
        try:
            await self.app(scope, receive, send)
        finally:
            limits.release()


async def watch(source: ClientsSource) -> None:
    """Reload the clients on SIGHUP and when the file changes, until cancelled (the lifespan's end)."""
    loop = asyncio.get_running_loop()
    with suppress(ValueError, RuntimeError):  # only a main thread's loop takes signals; the poll still runs
        loop.add_signal_handler(signal.SIGHUP, source.reload)
    try:
        while True:
            await asyncio.sleep(RELOAD_POLL_S)
            source.reload_if_changed()
    finally:
        with suppress(ValueError, RuntimeError):  # the loop may be closing
            loop.remove_signal_handler(signal.SIGHUP)
