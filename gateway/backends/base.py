"""What every backend client shares: one translation of transport and HTTP failures, and the readiness probes.

Backend clients raise only the gateway's own errors (gateway/errors.py): httpx's
and the openai SDK's exceptions are turned into them here, once, and counted
in `gateway_upstream_errors` by backend and kind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass

import httpx2
import openai
from prometheus_client import Counter

from gateway.backends.health import CircuitBreaker
from gateway.errors import BackendAuthFailed, BackendFailed, GatewayError, UpstreamRejected


def upstream_reason(response: httpx2.Response) -> str:
    """The reason a backend gave, from its own error shape (OpenAI or Open Inference), else its status."""
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or f"HTTP {response.status_code}"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message", error))[:500]
    return str(error or body.get("detail") or body)[:500] if isinstance(body, dict) else str(body)[:500]


def status_error(backend: str, status: int, reason: str) -> GatewayError:
    """A backend's HTTP error status as the gateway's error: its own key refused, its fault, or the request's."""
    if status in (401, 403):
        return BackendAuthFailed(backend, status)
    if status >= 500:
        return BackendFailed(backend, f"answered {status}: {reason}")
    return UpstreamRejected(backend, status, reason)


def raise_for_upstream(backend: str, response: httpx2.Response) -> None:
    if response.status_code >= 400:
        raise status_error(backend, response.status_code, upstream_reason(response))


@dataclass(frozen=True)
class FailureTranslator:
    """Every call to one backend goes through here: its circuit breaker, and its failures turned into gateway errors."""

    backend: str
    timeout_s: float
    errors: Counter
    breaker: CircuitBreaker

    def _counted(self, error: GatewayError, kind: str) -> GatewayError:
        self.errors.labels(self.backend, kind).inc()
        error.kind = kind  # for the log line, which names the backend and the kind, never the message
        return error

    @contextlib.contextmanager
    def translate(self, *, admit: bool = True) -> Iterator[None]:
        """One call; `admit=False` for the later phases of a call already admitted (a relayed body)."""
        with self.breaker.guarded(admit=admit), self._translated():
            yield

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except (httpx2.TimeoutException, openai.APITimeoutError):
            raise self._counted(BackendFailed(self.backend, f"timed out after {self.timeout_s:g} s"), "timeout") from None
        except openai.APIStatusError as error:
            failure = status_error(self.backend, error.status_code, _sdk_reason(error))
            raise self._counted(failure, f"http_{error.status_code}") from None
        except openai.APIConnectionError as error:
            cause = type(error.__cause__).__name__ if error.__cause__ else "connection error"
            raise self._counted(BackendFailed(self.backend, f"unreachable ({cause})"), "unreachable") from None
        except openai.APIError as error:  # an error event inside a stream the backend had started
            raise self._counted(BackendFailed(self.backend, f"broke off: {error.message}"), "stream_error") from None
        except httpx2.TransportError as error:
            raise self._counted(BackendFailed(self.backend, f"unreachable ({type(error).__name__})"), "unreachable") from None
        except GatewayError as error:  # raised by the client itself (e.g. an unusable answer)
            raise self._counted(error, type(error).__name__) from None


def _sdk_reason(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
        return str(message)[:500]
    return error.message[:500]


async def probe(client: httpx2.AsyncClient, path: str, headers: dict[str, str] | None = None) -> httpx2.Response | str:
    """GET one readiness URL: the response, or why there was none."""
    try:
        return await client.get(path, timeout=3.0, headers=headers)
    except httpx2.HTTPError as error:
        return type(error).__name__


async def inference_probe(request: Awaitable[httpx2.Response], what: str, timeout_s: float) -> tuple[bool, str]:
    """A real inference sent as a readiness probe: its verdict, naming why it failed."""
    try:
        answer = await request
    except httpx2.TimeoutException:
        return False, f"{what} got no answer within {timeout_s:g} s (engine wedged or overloaded)"
    except httpx2.HTTPError as error:
        return False, f"{what} failed ({type(error).__name__})"
    if answer.status_code != 200:
        return False, f"{what} answered {answer.status_code}: {upstream_reason(answer)}"
    return True, f"ready ({what} answered)"
