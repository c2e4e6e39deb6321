"""GET /admin/audit/events: the audit trail as FHIR AuditEvents (BALP), for an audit repository that pulls.

Admin only (gateway/routes/access.py). Paged by seq: `after` the last seq the caller has, at most `limit` records;
each event's first entity carries its seq and seal, so the copy can be checked against the trail.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from fhir.resources.R4B.bundle import Bundle

from gateway import audit
from gateway.audit_export import fhir_audit_event
from gateway.dependencies import GatewayDep
from gateway.fhir import FHIR_MEDIA_TYPE
from gateway.openapi import ERROR_RESPONSES

router = APIRouter(tags=["operations"])


# The Bundle is FHIR JSON; errors keep the API's JSON error shape.
BUNDLE: dict[int | str, dict[str, Any]] = {
    200: {"description": "a FHIR Bundle of AuditEvents", "content": {FHIR_MEDIA_TYPE: {"schema": {"type": "object"}}}}
}


@router.get("/admin/audit/events", responses={**BUNDLE, **ERROR_RESPONSES})
async def audit_events(
    gateway: GatewayDep,
    after: Annotated[int, Query(ge=-1)] = -1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    found = await asyncio.to_thread(audit.records, gateway.audit.folder, after)
    events = [fhir_audit_event(record) for record in found[:limit]]
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": event} for event in events]}
    body = Bundle.model_validate(bundle).model_dump(mode="json", exclude_none=True)
    return JSONResponse(body, media_type=FHIR_MEDIA_TYPE)
