"""What the gateway knows of a backend's health: a circuit breaker over its real calls, and a readiness verdict.

Circuit breaker: after `failures` backend faults in a row (timed out,
unreachable, 5xx, broke off; never a 4xx, which is the request's fault) the
circuit opens and calls fail at once for `cooldown_s` instead of each waiting
out its timeout; then one trial call is let through (half-open): success
closes the circuit, failure opens it again. A call that was cancelled (the
client left) is no verdict either way.

Readiness tells whether a real inference can be served now: an open circuit is
not ready; a real call that succeeded in the last `fresh_s` is proof enough (so
under traffic no probe is ever sent); otherwise a real probe (one token, one
tensor) runs, at most once per `fresh_s` and shared by concurrent /ready
callers (services/contract/probes.py). vLLM's /health stays 200 while its engine is wedged (vllm#36960); the
probe is what notices: a wedged backend reads not-ready within
`fresh_s` + the probe's timeout.
"""

from __future__ import annotations

import contextlib
import enum
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

from gateway.errors import BackendFailed, BackendUnavailable
from gateway.settings import ProbePolicy
from services.contract.probes import CachedProbe, Verdict


class Circuit(enum.IntEnum):
    """Values of the `gateway_backend_circuit` gauge."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


@dataclass
class CircuitBreaker:
    backend: str
    failures: int
    cooldown_s: float
    state: Circuit = Circuit.CLOSED
    failures_in_a_row: int = 0
    opened_at: float = 0.0
    last_success: float | None = None
    last_failure: float | None = None
    on_refused: Callable[[], None] = lambda: None  # counts calls failed fast (gateway_circuit_refusals_total)
    _trial_in_flight: bool = field(default=False, repr=False)

    def retry_after_s(self) -> float:
        return max(0.0, self.opened_at + self.cooldown_s - time.monotonic())

    def current(self) -> Circuit:
        """The state now: an open circuit whose cooldown has passed is half-open (its next call is the trial)."""
        if self.state is Circuit.OPEN and self.retry_after_s() == 0:
            self.state = Circuit.HALF_OPEN
        return self.state

    def _admit(self) -> None:
        state = self.current()
        if state is Circuit.CLOSED:
            return
        if state is Circuit.HALF_OPEN and not self._trial_in_flight:
            self._trial_in_flight = True  # this call is the trial
            return
        self.on_refused()
        raise BackendUnavailable(self.backend, self.failures_in_a_row, max(1, round(self.retry_after_s())))

    def _settle(self, ok: bool | None) -> None:
        self._trial_in_flight = False
        if ok:
            self.state, self.failures_in_a_row, self.last_success = Circuit.CLOSED, 0, time.monotonic()
        elif ok is False:
            self.failures_in_a_row, self.last_failure = self.failures_in_a_row + 1, time.monotonic()
            if self.state is Circuit.HALF_OPEN or self.failures_in_a_row >= self.failures:
                self.state, self.opened_at = Circuit.OPEN, time.monotonic()

    @contextlib.contextmanager
    def guarded(self, *, admit: bool = True) -> Iterator[None]:
        """One call: refused at once while open (`admit`), its outcome counted when it ends."""
        if admit:
            self._admit()
        verdict: bool | None = None
        try:
            yield
            verdict = True
        except BackendFailed:
            verdict = False
            raise
        finally:  # a 4xx, a refused key or a cancelled call is no verdict; the trial slot is freed
            self._settle(verdict)

    def describe(self) -> str:
        return f"circuit open after {self.failures_in_a_row} failures in a row; next trial in {self.retry_after_s():.0f} s"


class Readiness:
    def __init__(self, breaker: CircuitBreaker, probe: Callable[[], Awaitable[Verdict]], policy: ProbePolicy) -> None:
        self.breaker = breaker
        self.probe = CachedProbe(probe, policy.fresh_s)  # the backend's real probe: one token, or one tensor

    async def check(self) -> Verdict:
        if self.breaker.current() is Circuit.OPEN:
            return False, self.breaker.describe()
        return await self.probe.check(self.breaker.last_success, self.breaker.last_failure)
