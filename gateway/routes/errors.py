"""The one mapping of errors to HTTP: the gateway's domain errors, FastAPI's and Starlette's own, in OpenAI's shape.

`error_response()` is a failure before the first byte; `error_body()` is the
`data: {"error": ...}` event that ends a stream which fails after it.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from gateway.errors import GatewayError, InvalidRequest, MethodNotAllowed, PayloadTooLarge, RouteNotFound
from gateway.protocol import ErrorDetail, ErrorResponse
from services.contract.asgi import BodyTooLarge
from services.contract.validation import describe, first_problem

log = logging.getLogger("gateway")


def error_body(error: GatewayError) -> dict[str, Any]:
    detail = ErrorDetail(message=error.message, type=error.type, param=error.param, code=error.code)
    return ErrorResponse(error=detail).model_dump()


def error_response(error: GatewayError) -> JSONResponse:
    return JSONResponse(error_body(error), status_code=error.status, headers=error.headers())


async def _gateway_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, GatewayError)
    if error.status >= 500:  # the backend and how it failed; never the message, which may quote a backend
        fields = {
            "request_id": getattr(request.state, "request_id", None),
            "error": type(error).__name__,
            "status": error.status,
            "backend": getattr(error, "backend", None),
            "kind": error.kind,
        }
        log.warning("request failed", extra={"fields": fields})
    return error_response(error)


async def _validation_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    param, _ = first_problem(error.errors())
    return error_response(InvalidRequest(f"invalid request: {describe(error.errors(), 'body')}", param=param))


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    """Starlette's own 404/405 (no route, wrong method), in OpenAI's shape like every other error."""
    assert isinstance(error, HTTPException)
    where = f"{request.method} {request.url.path}"
    if error.status_code == 405:
        return error_response(MethodNotAllowed(f"method not allowed: {where}", _allowed(request)))
    if error.status_code == 404:
        return error_response(RouteNotFound(f"no such endpoint: {where}"))
    generic = GatewayError(str(error.detail))
    generic.status = error.status_code
    return error_response(generic)


def _allowed(request: Request) -> str | None:
    """Every method of every route on this path: Starlette's own Allow names only the first route's."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods)) or None


async def _too_large(_request: Request, error: Exception) -> JSONResponse:
    return error_response(PayloadTooLarge(str(error)))


async def _unexpected(_request: Request, error: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=error)
    return error_response(GatewayError("internal error in the gateway; see its log"))


def install(app: FastAPI) -> None:
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(BodyTooLarge, _too_large)
    app.add_exception_handler(Exception, _unexpected)
