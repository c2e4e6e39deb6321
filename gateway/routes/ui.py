"""GET /ui: the web page, its static assets and its configuration; no API key needed to load the page.

The page then calls /v1 like any client (with the key the user types, when keys
are configured, or the cookie of a login through the hospital's OpenID Provider:
/ui/login, /ui/callback, /ui/logout), and POST /ui/preview to show a DICOM as the
models see it. Every response here carries a Content-Security-Policy that
allows nothing outside the gateway's origin: no CDN, no fonts, no beacons, no
framing; `blob:` images are the user's own file, shown from the browser's memory.
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from gateway.audit import AuditNote
from gateway.clinical.content import LANGUAGES
from gateway.dependencies import Gateway, GatewayDep, permit
from gateway.errors import AuthenticationFailed, RouteNotFound
from gateway.identity import PERSON_PREFIX, Caller, Permission
from gateway.images import load_upload
from gateway.oidc import Login, OpenIdProvider
from gateway.routes.access import SESSION_COOKIE

router = APIRouter(include_in_schema=False)
LOGIN_COOKIE = "cxr_login"  # a login under way: state, nonce and PKCE verifier, for the callback only
LOGIN_TTL_S = 600

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


@router.get("/ui/review")
async def review_page(gateway: GatewayDep) -> Response:
    """The radiologists' review (gateway/routes/reviews.py serves its data, to the review permission only)."""
    return Response(gateway.page.review, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


@router.get("/ui/")
async def page_with_slash() -> Response:
    return RedirectResponse("/ui", status_code=308)


@router.get("/ui/config.json")
async def config(request: Request, gateway: GatewayDep) -> Response:
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
        "auth_required": not gateway.identity.clients.open or gateway.oidc is not None,
        "sign_in": gateway.oidc is not None,  # the page offers /ui/login
        "user": _signed_in(request),
        "stand_in": not gateway.catalog.clinical_use,
        "max_upload_bytes": gateway.image_policy.max_bytes,
        "texts": texts,
    }
    return JSONResponse(body, headers=PAGE_HEADERS)


def _signed_in(request: Request) -> str | None:
    """The name of the person whose login cookie came with the request (gateway/routes/access.py checked it)."""
    caller: Caller | None = getattr(request.state, "caller", None)
    if caller is None or not caller.name.startswith(PERSON_PREFIX):
        return None
    return caller.name.removeprefix(PERSON_PREFIX)


def _provider(gateway: Gateway) -> OpenIdProvider:
    if gateway.oidc is None:
        raise RouteNotFound("no login here: the gateway has no OpenID Provider (GATEWAY_OIDC_ISSUER)")
    return gateway.oidc


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


@router.get("/ui/login")
async def login(request: Request, gateway: GatewayDep) -> Response:
    """To the hospital's provider, with a new PKCE verifier, state and nonce kept for the callback."""
    started = Login.new()
    redirect = RedirectResponse(_provider(gateway).authorization_url(started), status_code=303)
    redirect.set_cookie(
        LOGIN_COOKIE,
        started.cookie(),
        max_age=LOGIN_TTL_S,
        path="/ui/callback",
        httponly=True,
        secure=_secure(request),
        samesite="lax",
    )
    return redirect


@router.get("/ui/callback")
async def callback(request: Request, gateway: GatewayDep) -> Response:
    """The provider's answer: the code exchanged for tokens, checked, and the access token kept in the session cookie."""
    provider = _provider(gateway)
    started = Login.from_cookie(request.cookies.get(LOGIN_COOKIE, ""))
    state, code = request.query_params.get("state", ""), request.query_params.get("code")
    if "error" in request.query_params:
        raise AuthenticationFailed(f"the provider ended the login: {request.query_params['error'][:100]}")
    if started is None or not secrets.compare_digest(state, started.state) or not code:
        raise AuthenticationFailed("this login was not started here, or has expired: sign in again")
    if request.query_params.get("iss", provider.config.issuer) != provider.config.issuer:  # RFC 9207
        raise AuthenticationFailed("the login's answer names another provider")
    token, lifetime = await provider.exchange(code, started)
    done = RedirectResponse("/ui", status_code=303)
    done.delete_cookie(LOGIN_COOKIE, path="/ui/callback")
    done.set_cookie(SESSION_COOKIE, token, max_age=lifetime, path="/", httponly=True, secure=_secure(request), samesite="strict")
    return done


@router.get("/ui/logout")
async def logout() -> Response:
    done = RedirectResponse("/ui", status_code=303)
    done.delete_cookie(SESSION_COOKIE, path="/")
    return done


@router.post("/ui/preview")
async def preview(request: Request, gateway: GatewayDep) -> Response:
    """The X-ray as the models see it (a DICOM rendered with its VOI and polarity), for the page; nothing is kept."""
    permit(request, Permission.ANALYZE)
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
