"""The worker's OpenAPI document lists the statuses it really answers, each in the protocol's `{"error": ...}`.

FastAPI documents a 422 it never sends here (validation failures are 400s,
errors.py) and none of the others; schemathesis, run over this document in the
suite (tests/classifier/test_schema_fuzzing.py), fails on any status or
content type the document does not list.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

_ERROR_BODY = {
    "application/json": {
        "schema": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    }
}
_ANY_REQUEST = {"413": "body over CLASSIFIER_MAX_BODY_BYTES", "431": "headers over CLASSIFIER_MAX_HEADER_BYTES"}
_INFERENCE = {
    "400": "not an image the worker reads, or a tensor that does not fit the model",
    "500": "ONNX Runtime failed",
    "503": "queue full (Retry-After)",
    "504": "no result within CLASSIFIER_REQUEST_TIMEOUT_S",
}


def _statuses(path: str, method: str) -> dict[str, str]:
    statuses = dict(_ANY_REQUEST)
    if "{name}" in path:
        statuses["404"] = "no such model or version"
    if method == "post":
        statuses.update(_INFERENCE)
    if path.endswith("ready"):
        statuses["503"] = "not ready: no real tensor could be run"
    return statuses


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, routes=app.routes)
            for path, operations in document["paths"].items():
                for method, operation in operations.items():
                    responses = operation["responses"]
                    responses.pop("422", None)
                    for status, why in _statuses(path, method).items():
                        responses.setdefault(status, {"description": why, "content": _ERROR_BODY})
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise the document
