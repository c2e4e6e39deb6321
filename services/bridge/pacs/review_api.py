"""The review over HTTP, on the bridge's operations port, for the gateway alone (CXR_BRIDGE_REVIEW_TOKEN).

The gateway is the reviewers' door (gateway/routes/reviews.py): it authenticates the person and names the
reviewer; the bridge trusts a caller that holds the review token and nobody else (a missing or wrong token
is a 401 before the PACS is asked anything). What it serves is read from the PACS on every call (pacs/review.py):

    GET  /reviews                           the worklist: unverified results, newest first
    GET  /reviews/{study}/{series}/{sop}    one result: the AI's findings, probability, fracture text, report,
                                            disclaimer (stand-in notice included), and its signature if signed
    GET  /reviews/{study}/{series}/{sop}/image
                                            the source image as a PNG, decoded as the models saw it
                                            (services/contract/dicom.py, the gateway's decoder)
    POST /reviews/{study}/{series}/{sop}    sign it (services/contract/review.py SignOff) → 201 SignedOut;
                                            409 when signed already (who and when), 422 when the review does
                                            not fit the result, 503 when the PACS is away

A study-level restriction comes from the gateway as the reviewer's sites (services/contract/review.py
SITES_HEADER, a JSON array of InstitutionNames): the worklist holds only their studies' results, and a result
of another study is answered 404, as one that does not exist, on every route.

The PACS client is synchronous: each call runs in a thread. Errors answer {"detail": ...}, which the gateway
relays in its own error shape. One log line per signature: UIDs and verdicts, never a name or the text.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import io
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException
from fastapi.responses import Response
from pydicom import Dataset, dcmwrite

from services.bridge.pacs import verified
from services.bridge.pacs.dicomweb import InstanceRef, PacsUnavailable
from services.bridge.pacs.review import AlreadySigned, Reviews
from services.bridge.pacs.verified import FindingVerdict, Review, Reviewer, ReviewRefused, Signed
from services.contract.dicom import DicomPolicy, read
from services.contract.images import ImageError
from services.contract.review import SITES_HEADER, ReviewerIdentity, SignedFindingOut, SignedOut, SignOff, Uid

log = logging.getLogger("bridge")

OnSigned = Callable[[Dataset, SignedOut], Awaitable[None]]  # given the verified SR as stored: queues the RIS's ORU


def signed_out(study: str, signed: Signed) -> SignedOut:
    findings = [
        SignedFindingOut(
            finding=f.ai.finding, model=f.ai.model, sha256=f.ai.sha256, ai_call=f.ai.call, verdict=f.verdict, state=f.state
        )
        for f in signed.findings
    ]
    return SignedOut(
        study=study,
        preliminary_sop=signed.preliminary_uid,
        verified_sop=verified.verified_instance_uid(signed.preliminary_uid),
        reviewer=signed.reviewer,
        login=signed.login,
        signed_at=signed.signed_at.isoformat(),
        findings=findings,
        report_edited=signed.report_edited,
        changed=signed.report_edited or any(f.verdict != "accepted" for f in signed.findings),
    )


def _review(body: SignOff, now: dt.datetime) -> Review:
    who: ReviewerIdentity = body.reviewer
    return Review(
        reviewer=Reviewer(name=who.name, login=who.login, organization=who.organization),
        verdicts=[FindingVerdict(v.finding, v.verdict, v.state, v.comment) for v in body.verdicts],
        report=body.report,
        report_edited=body.report_edited,
        signed_at=now.replace(microsecond=0),
    )


async def _pacs(call: Callable[..., Any], *args: Any) -> Any:
    try:
        return await asyncio.to_thread(call, *args)
    except PacsUnavailable as error:
        raise HTTPException(503, f"PACS unavailable: {error}") from None


async def _sites(sites: Annotated[str | None, Header(alias=SITES_HEADER)] = None) -> frozenset[str] | None:
    """The reviewer's sites, when the gateway restricts the review; a malformed value is refused, never ignored."""
    if sites is None:
        return None
    try:
        named = json.loads(sites)
    except ValueError:
        named = None
    if not isinstance(named, list) or not all(isinstance(site, str) for site in named):
        raise HTTPException(400, f"{SITES_HEADER} must be a JSON array of site names")
    return frozenset(named)


Sites = Annotated[frozenset[str] | None, Depends(_sites)]


def router(reviews: Reviews, token: str, policy: DicomPolicy, on_signed: OnSigned) -> APIRouter:
    async def authorised(authorization: Annotated[str, Header()] = "") -> None:
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise HTTPException(401, "the review API needs the bridge's review token")

    api = APIRouter(prefix="/reviews", dependencies=[Depends(authorised)])

    async def visible(study: Uid, sop: Uid, sites: Sites) -> None:
        if sites is not None and await _pacs(reviews.pacs.institution, study) not in sites:
            raise HTTPException(404, f"no result {sop} among the studies this reviewer may see")

    Visible = Depends(visible)

    @api.get("")
    async def worklist(sites: Sites) -> dict[str, list[dict[str, str]]]:
        pending = await _pacs(reviews.worklist, None, sites)
        return {"results": [{"study": p.sr.study, "series": p.sr.series, "sop": p.sr.sop, "made": p.made} for p in pending]}

    @api.get("/{study}/{series}/{sop}", dependencies=[Visible])
    async def result(study: Uid, series: Uid, sop: Uid) -> dict[str, Any]:
        ref = InstanceRef(study, series, sop)
        shown = verified.read_result(await _pacs(reviews.pacs.retrieve, ref))
        signed = await _pacs(reviews.signed, ref)
        return {
            "study": study,
            "series": series,
            "sop": sop,
            "findings": [{"finding": f.finding, "call": f.call, "model": f.model, "sha256": f.sha256} for f in shown.findings],
            "probability": shown.probability,
            "fracture_text": shown.fracture_text,
            "report": shown.report,
            "disclaimer": shown.disclaimer,
            "signed": None if signed is None else signed_out(study, signed).model_dump(),
        }

    @api.get("/{study}/{series}/{sop}/image", dependencies=[Visible])
    async def image(study: Uid, series: Uid, sop: Uid) -> Response:
        shown = verified.read_result(await _pacs(reviews.pacs.retrieve, InstanceRef(study, series, sop)))
        source = InstanceRef(study, str(shown.image.SeriesInstanceUID), str(shown.image.SOPInstanceUID))
        dataset = await _pacs(reviews.pacs.retrieve, source)
        return Response(await asyncio.to_thread(_png, dataset, policy), media_type="image/png")

    @api.post("/{study}/{series}/{sop}", status_code=201, dependencies=[Visible])
    async def sign(study: Uid, series: Uid, sop: Uid, body: SignOff) -> SignedOut:
        review = _review(body, dt.datetime.now(dt.UTC))
        try:
            signed, stored = await _pacs(reviews.sign, InstanceRef(study, series, sop), review)
        except AlreadySigned as error:
            raise HTTPException(409, str(error)) from None
        except ReviewRefused as error:
            raise HTTPException(422, str(error)) from None
        out = signed_out(study, signed)
        verdicts = {f.finding: f.verdict for f in out.findings}
        log.info("signed", extra={"fields": {"preliminary_sop": sop, "verified_sop": out.verified_sop, "verdicts": verdicts}})
        await on_signed(stored, out)
        return out

    return api


def _png(dataset: Any, policy: DicomPolicy) -> bytes:
    data = io.BytesIO()
    dcmwrite(data, dataset, enforce_file_format=True)
    try:
        return read(data.getvalue(), policy).png()
    except ImageError as error:
        raise HTTPException(422, f"the source image cannot be shown: {error}") from None
