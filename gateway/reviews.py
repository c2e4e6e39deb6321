"""The review desk: the gateway's client of the bridge's review API (services/bridge/pacs/review_api.py).

The bridge reads and writes the PACS; this side only relays, and turns the bridge's answers into the
gateway's errors (gateway/errors.py), named as the `review` backend: unreachable or 5xx → BackendFailed
(503), 401 → BackendAuthFailed (GATEWAY_REVIEW_API_KEY is wrong), 409 → AlreadySigned (who and when),
another 4xx → UpstreamRejected with the bridge's reason.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2

from gateway.errors import AlreadySigned, BackendAuthFailed, BackendFailed, UpstreamRejected
from services.contract.review import SITES_HEADER, SignedOut, SignOff

BACKEND = "review"
Sites = frozenset[str] | None  # the reviewer's sites when the review is restricted (gateway/identity.py Caller.sites)


class ReviewDesk:
    def __init__(self, http: httpx2.AsyncClient, base_url: str, api_key: str) -> None:
        self._http = http
        self._base = base_url.rstrip("/") + "/reviews"
        self._headers = {"Authorization": f"Bearer {api_key}"}

    async def worklist(self, sites: Sites) -> list[dict[str, str]]:
        results: list[dict[str, str]] = (await self._call("GET", "", sites))["results"]
        return results

    async def result(self, study: str, series: str, sop: str, sites: Sites) -> dict[str, Any]:
        found: dict[str, Any] = await self._call("GET", f"/{study}/{series}/{sop}", sites)
        return found

    async def image(self, study: str, series: str, sop: str, sites: Sites) -> bytes:
        return (await self._send("GET", f"/{study}/{series}/{sop}/image", sites)).content

    async def sign(self, study: str, series: str, sop: str, sign_off: SignOff, sites: Sites) -> SignedOut:
        return SignedOut.model_validate(await self._call("POST", f"/{study}/{series}/{sop}", sites, sign_off.model_dump()))

    async def _call(self, method: str, path: str, sites: Sites, body: dict[str, Any] | None = None) -> Any:
        return (await self._send(method, path, sites, body)).json()

    async def _send(self, method: str, path: str, sites: Sites, body: dict[str, Any] | None = None) -> httpx2.Response:
        headers = self._headers if sites is None else {**self._headers, SITES_HEADER: json.dumps(sorted(sites))}
        try:
            response = await self._http.request(method, self._base + path, json=body, headers=headers)
        except httpx2.HTTPError as error:
            raise BackendFailed(BACKEND, f"the bridge is unreachable ({type(error).__name__})") from None
        if response.status_code < 400:
            return response
        detail = _detail(response)
        if response.status_code == 401:
            raise BackendAuthFailed(BACKEND, 401)
        if response.status_code == 409:
            raise AlreadySigned(detail)
        if response.status_code < 500:
            raise UpstreamRejected(BACKEND, response.status_code, detail)
        raise BackendFailed(BACKEND, detail)


def _detail(response: httpx2.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    return str(detail)[:500] if detail else f"HTTP {response.status_code}"
