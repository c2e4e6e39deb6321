"""What every backend client shares: a concurrency limit and one translation of HTTP failures."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx

from gateway.errors import BackendFailed, BackendSaturated, UpstreamRejected


class ConcurrencyLimit:
    """In-flight requests to one backend; over the limit the caller gets 429, never an unbounded queue."""

    def __init__(self, backend: str, limit: int) -> None:
        self.backend = backend
        self.limit = limit
        self.in_flight = 0

    def acquire(self) -> None:
        if self.in_flight >= self.limit:
            raise BackendSaturated(self.backend, self.limit)
        self.in_flight += 1

    def release(self) -> None:
        self.in_flight -= 1

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()


def upstream_reason(response: httpx.Response) -> str:
    """The reason a backend gave, from its own error shape (OpenAI or Open Inference), else its status."""
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or f"HTTP {response.status_code}"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message", error))
    return str(error or body.get("detail") or body)[:500] if isinstance(body, dict) else str(body)[:500]


def raise_for_upstream(backend: str, response: httpx.Response) -> None:
    if response.status_code >= 500:
        raise BackendFailed(backend, f"answered {response.status_code}: {upstream_reason(response)}")
    if response.status_code >= 400:
        raise UpstreamRejected(backend, response.status_code, upstream_reason(response))


@contextlib.contextmanager
def transport_errors(backend: str, timeout_s: float):
    """httpx's transport failures, named for the backend they hit."""
    try:
        yield
    except httpx.TimeoutException:
        raise BackendFailed(backend, f"timed out after {timeout_s:g} s") from None
    except httpx.TransportError as error:
        raise BackendFailed(backend, f"unreachable ({type(error).__name__})") from None


async def probe(client: httpx.AsyncClient, url: str) -> tuple[bool, str]:
    """Readiness of one health URL: 200 is ready; anything else says what it was."""
    try:
        response = await client.get(url, timeout=3.0)
    except httpx.HTTPError as error:
        return False, f"{type(error).__name__}"
    return response.status_code == 200, f"HTTP {response.status_code}"
