"""The gateway's error tree, and its one mapping to OpenAI's error object.

    GatewayError                      any failure a client is told about
    ├── InvalidRequest        400     bad JSON, wrong types, missing fields
    │   └── ImageRejected     400     no/two images, bad base64, not JPEG/PNG, too many pixels
    ├── AuthenticationFailed  401     missing or wrong API key
    ├── ModelNotFound         404     a model name no route serves
    ├── PayloadTooLarge       413     body over the size limit
    ├── BackendSaturated      429     a backend's concurrency limit is reached (Retry-After)
    ├── UpstreamRejected      4xx     a backend refused the request: its status and reason, relayed
    └── BackendFailed         503     a backend is unreachable, timed out or answered 5xx

Domain code raises these and knows nothing of HTTP; `install()` turns them
into responses. The message always names the backend when one is involved.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from gateway.protocol import ErrorDetail, ErrorResponse
from services.asgi import BodyTooLarge

log = logging.getLogger("gateway")


class GatewayError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.code

    def headers(self) -> dict[str, str] | None:
        return None


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"


class ImageRejected(InvalidRequest):
    code = "invalid_image"


class AuthenticationFailed(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class ModelNotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class BackendSaturated(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "backend_saturated"
    retry_after_s = 1

    def __init__(self, backend: str, limit: int) -> None:
        super().__init__(f"{backend} backend is at its concurrency limit ({limit} in flight); retry shortly")
        self.backend = backend

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class UpstreamRejected(GatewayError):
    type = "invalid_request_error"
    code = "upstream_rejected"

    def __init__(self, backend: str, status: int, reason: str) -> None:
        super().__init__(f"{backend} backend refused the request ({status}): {reason}")
        self.backend = backend
        self.status = status


class BackendFailed(GatewayError):
    status = 503
    type = "service_unavailable"
    code = "backend_unavailable"

    def __init__(self, backend: str, reason: str) -> None:
        super().__init__(f"{backend} backend failed: {reason}")
        self.backend = backend
        self.reason = reason


def error_body(status: int, message: str, type_: str, code: str | None = None, param: str | None = None) -> dict:
    return ErrorResponse(error=ErrorDetail(message=message, type=type_, param=param, code=code)).model_dump()


def error_response(error: GatewayError) -> JSONResponse:
    body = error_body(error.status, error.message, error.type, error.code, error.param)
    return JSONResponse(body, status_code=error.status, headers=error.headers())


async def _gateway_error(_request: Request, error: GatewayError) -> JSONResponse:
    if error.status >= 500:
        log.warning("request failed", extra={"fields": {"error": type(error).__name__, "status": error.status}})
    return error_response(error)


async def _validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
    first = error.errors()[0]
    param = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or None
    return error_response(InvalidRequest(f"invalid request: {param or 'body'}: {first.get('msg', 'invalid')}", param=param))


async def _too_large(_request: Request, error: BodyTooLarge) -> JSONResponse:
    return error_response(PayloadTooLarge(str(error)))


async def _unexpected(_request: Request, error: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=error)
    return error_response(GatewayError("internal error in the gateway; see its log"))


def install(app: FastAPI) -> None:
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(BodyTooLarge, _too_large)
    app.add_exception_handler(Exception, _unexpected)
