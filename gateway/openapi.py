"""The request bodies and error answers of the OpenAPI document.

The chat route reads its body itself (a pass-through must relay the client's
bytes unchanged) and analyze parses its multipart form with tight limits, so
FastAPI cannot infer either body: they are declared here, from the same
pydantic models, so that Swagger UI can send an X-ray and generated clients
know the fields.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from gateway.protocol import ChatRequest, ErrorResponse

_SCHEMAS = "#/components/schemas/{model}"

CHAT_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": _SCHEMAS.format(model="ChatRequest")}}},
    }
}

ANALYZE_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "the chest X-ray, JPEG or PNG"},
                        "language": {"type": "string", "enum": ["en", "zh"]},
                        "indication": {"type": "string", "maxLength": 2000, "description": "clinical indication"},
                        "priority": {"type": "string", "enum": ["stat", "routine"], "description": "STAT is served first"},
                        "subject": {"type": "string", "description": "FHIR output: Patient/<id> or Group/<id>"},
                        "encounter": {"type": "string", "description": "FHIR output: Encounter/<id>"},
                        "imaging_study": {"type": "string", "description": "FHIR output: ImagingStudy/<id>"},
                    },
                }
            }
        },
    }
}

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": why}
    for status, why in {
        400: "invalid request, image or parameter",
        401: "missing or wrong API key",
        403: "the caller has no permission for this (or for this model)",
        404: "unknown model",
        413: "body too large",
        429: "the caller's own limit or a backend's concurrency limit is reached (Retry-After)",
        502: "a backend refused the gateway's key",
        503: "a required backend failed",
    }.items()
}


def install(app: FastAPI) -> None:
    """Add the declared request schemas to the generated document's components."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, routes=app.routes, description=app.description)
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            request_schema = ChatRequest.model_json_schema(ref_template=_SCHEMAS)
            schemas.update(request_schema.pop("$defs", {}))
            schemas["ChatRequest"] = request_schema
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise the document
