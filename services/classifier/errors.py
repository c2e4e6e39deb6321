"""Every failure the worker can report, mapped in one place to a status and `{"error": reason}`.

Domain modules raise typed exceptions and know nothing of HTTP; this table
decides what a client sees. Nothing here ever answers 500 for bad input.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from services.classifier.batcher import InferenceFailed, InferenceTimeout, QueueFull
from services.classifier.service import TensorError
from services.contract.asgi import BodyTooLarge
from services.contract.images import ImageError
from services.contract.tensors import TensorFormatError
from services.contract.validation import describe

log = logging.getLogger(__name__)


class UnknownModel(LookupError):
    pass


class BadRequest(ValueError):
    pass


STATUS_BY_ERROR: dict[type[Exception], int] = {
    ImageError: 400,  # includes ImageTooLarge: the pixel limit is a property of the image, not the body
    TensorError: 400,
    TensorFormatError: 400,
    BadRequest: 400,
    UnknownModel: 404,
    BodyTooLarge: 413,
    QueueFull: 503,
    InferenceFailed: 500,
    InferenceTimeout: 504,
}


def error_response(status: int, reason: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status, headers=headers)


async def _domain_error(_request: Request, error: Exception) -> JSONResponse:
    status = next(code for kind, code in STATUS_BY_ERROR.items() if isinstance(error, kind))
    headers = {"Retry-After": str(error.retry_after_s)} if isinstance(error, QueueFull) else None
    if status >= 500:
        log.warning("request failed: %s: %s", type(error).__name__, error)
    return error_response(status, str(error), headers)


async def _validation_error(_request: Request, error: Exception) -> JSONResponse:
    """FastAPI's request validation, and pydantic's where a route parses a body itself (the v2 infer header)."""
    assert isinstance(error, RequestValidationError | ValidationError)
    return error_response(400, f"invalid request: {describe(error.errors(), 'body')}")


async def _http_error(_request: Request, error: Exception) -> JSONResponse:
    """Starlette's own answers (no such route, wrong method) in the protocol's `{"error": ...}` shape."""
    assert isinstance(error, HTTPException)
    return error_response(error.status_code, str(error.detail), dict(error.headers or {}) or None)


async def _unexpected(_request: Request, error: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=error)
    return error_response(500, "internal error in the classifier worker; see its log")


def install(app: FastAPI) -> None:
    for kind in STATUS_BY_ERROR:
        app.add_exception_handler(kind, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
