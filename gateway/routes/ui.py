"""GET /ui: the web page, its static assets and its configuration; no API key needed to load the page.

The page then calls /v1 like any client (with the key the user types, when keys
are configured), and POST /ui/preview (with the same key) to show a DICOM as the
models see it. Every response here carries a Content-Security-Policy that
allows nothing outside the gateway's origin: no CDN, no fonts, no beacons, no
framing; `blob:` images are the user's own file, shown from the browser's memory.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from gateway.audit import AuditNote
from gateway.clinical.content import LANGUAGES
from gateway.dependencies import GatewayDep, require_api_key
from gateway.errors import RouteNotFound
from gateway.images import load_upload

router = APIRouter(include_in_schema=False)

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob:",
        "connect-src 'self'",
        "form-action 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
# no-store: nothing of a patient's image or result is kept by the browser or a proxy after the page closes.
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@router.get("/ui")
async def page(gateway: GatewayDep) -> Response:
    return Response(gateway.page.index, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


@router.get("/ui/")
async def page_with_slash() -> Response:
    return RedirectResponse("/ui", status_code=308)


@router.get("/ui/config.json")
async def config(gateway: GatewayDep) -> Response:
    """What the page needs before the first request: labels and clinical notices in both languages, auth, limits."""
    clinical = gateway.pipeline.clinical
    texts = {
        language: {
            **gateway.page.labels_in(language),
            "disclaimer": clinical.text("disclaimer", language),
            "stand_in_notice": clinical.text("stand_in_notice", language),
        }
        for language in LANGUAGES
    }
    body = {
        "model": gateway.settings.pipeline_model,
        "default_language": gateway.settings.default_language,
        "auth_required": bool(gateway.api_keys),
        "stand_in": not gateway.catalog.clinical_use,
        "max_upload_bytes": gateway.image_policy.max_bytes,
        "texts": texts,
    }
    return JSONResponse(body, headers=PAGE_HEADERS)


@router.post("/ui/preview", dependencies=[Depends(require_api_key)])
async def preview(request: Request, gateway: GatewayDep) -> Response:
    """The X-ray as the models see it (a DICOM rendered with its VOI and polarity), for the page; nothing is kept."""
    note = AuditNote(models=[])  # no model runs: the record says who looked at which study
    request.state.audit = note
    xray = await load_upload(await request.body(), gateway.image_policy)
    note.study_uid = xray.source.study_instance_uid if xray.source is not None else None
    return Response(xray.image, media_type=xray.mime, headers=PAGE_HEADERS)


@router.get("/ui/static/{name}")
async def asset(name: str, gateway: GatewayDep) -> Response:
    found = gateway.page.assets.get(name)
    if found is None:
        raise RouteNotFound(f"no asset {name!r} under /ui/static")
    return Response(found.body, media_type=found.media_type, headers=PAGE_HEADERS)
