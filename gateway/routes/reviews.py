"""The radiologists' review: /v1/reviews, what the review page (/ui/review) calls.

Every route needs the `review` permission (403 otherwise, configured or not); signing needs a person who
logged in (OpenID Connect): the verdict names its reviewer from the login, never from the request. The bridge
reads and writes the PACS (gateway/reviews.py relays): the gateway keeps no copy of a result.

    GET  /v1/reviews                              the worklist: unverified results, newest first
    GET  /v1/reviews/{study}/{series}/{sop}       one result, and its signature once signed
    GET  /v1/reviews/{study}/{series}/{sop}/image the image as the models saw it (PNG)
    POST /v1/reviews/{study}/{series}/{sop}       sign it (a Signing) → 201, the signed result; 409 signed already

Each call is audited (gateway/routes/observation.py) with the study as its keyed hash; a signature also
records the result's UIDs and the verdict per finding, and counts each verdict (gateway_review_verdicts).
Nothing here is cached by the browser (Cache-Control: no-store): it is patient data.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from gateway.audit import AuditNote, ReviewNote
from gateway.dependencies import GatewayDep, caller_of, permit
from gateway.errors import InvalidRequest, RouteNotFound
from gateway.identity import PERSON_PREFIX, Permission
from gateway.openapi import ERROR_RESPONSES
from gateway.reviews import ReviewDesk
from services.contract.review import ReviewerIdentity, SignedOut, Signing, SignOff, Uid

router = APIRouter(tags=["review"], responses=ERROR_RESPONSES)
NO_STORE = {"Cache-Control": "no-store"}


async def _desk(request: Request, gateway: GatewayDep) -> ReviewDesk:
    permit(request, Permission.REVIEW)
    request.state.audit = AuditNote(models=[], study_uid=request.path_params.get("study"))
    if gateway.reviews is None:
        raise RouteNotFound("the review is not configured on this gateway (GATEWAY_REVIEW_URL)")
    return gateway.reviews


Desk = Annotated[ReviewDesk, Depends(_desk)]


def _reviewer(request: Request, organization: str) -> ReviewerIdentity:
    caller = caller_of(request)
    if not caller.name.startswith(PERSON_PREFIX):
        raise InvalidRequest(f"{caller.name!r} is a client: a review is signed by a person who logs in")
    login = caller.name.removeprefix(PERSON_PREFIX)
    try:
        return ReviewerIdentity(login=login, name=caller.full_name or login, organization=organization)
    except ValidationError:
        raise InvalidRequest("the login's name or user name cannot sign a DICOM SR (at most 64 characters, no \\ or =)") from None


async def _sites(request: Request) -> frozenset[str] | None:
    return caller_of(request).sites


Sites = Annotated[frozenset[str] | None, Depends(_sites)]


@router.get("/v1/reviews")
async def worklist(desk: Desk, sites: Sites) -> JSONResponse:
    return JSONResponse({"results": await desk.worklist(sites)}, headers=NO_STORE)


@router.get("/v1/reviews/{study}/{series}/{sop}")
async def result(desk: Desk, sites: Sites, study: Uid, series: Uid, sop: Uid) -> JSONResponse:
    return JSONResponse(await desk.result(study, series, sop, sites), headers=NO_STORE)


@router.get("/v1/reviews/{study}/{series}/{sop}/image", response_class=Response)
async def image(desk: Desk, sites: Sites, study: Uid, series: Uid, sop: Uid) -> Response:
    return Response(await desk.image(study, series, sop, sites), media_type="image/png", headers=NO_STORE)


@router.post("/v1/reviews/{study}/{series}/{sop}", status_code=201)
async def sign(
    request: Request, gateway: GatewayDep, desk: Desk, sites: Sites, study: Uid, series: Uid, sop: Uid, body: Signing
) -> SignedOut:
    note: AuditNote = request.state.audit
    note.review = ReviewNote(preliminary_sop=sop, verdicts={v.finding: v.verdict for v in body.verdicts})
    reviewer = _reviewer(request, gateway.settings.review_organization)
    signed = await desk.sign(study, series, sop, SignOff(**body.model_dump(), reviewer=reviewer), sites)
    note.review.verified_sop = signed.verified_sop
    note.models = _models(signed)
    for finding in signed.findings:
        gateway.metrics.review_verdicts.labels(finding.model, finding.sha256, finding.finding, finding.verdict).inc()
    return signed


def _models(signed: SignedOut) -> list[dict[str, Any]]:
    seen = {(f.model, f.sha256) for f in signed.findings}
    return [{"name": name, "sha256": sha256} for name, sha256 in sorted(seen)]
