"""Admission: the one place that decides whether a request may use a backend now.

Every route and the pipeline are admitted here, before any work: a pass-through
takes a slot on its backend for as long as its body is relayed, the classifier
route one on the classifier, and a cxr-report one on all three backends at once
(all or none). Over a backend's limit the caller gets `BackendSaturated` (429
with a Retry-After from that backend's own history), never an unbounded queue.

STAT first: a share of each backend's slots (GATEWAY_STAT_RESERVED_SHARE) is kept for STAT requests
(services/contract/priority.py). Routine work fills the rest and is refused beyond it, so a STAT request
finds a slot while routine requests hold every one they may take; only STAT work beyond the reserve
itself is refused. A reserve rather than a queue: every refusal stays immediate, with its Retry-After.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from types import TracebackType

from gateway.errors import BackendSaturated
from services.contract.priority import Priority
from services.contract.roles import Role

MAX_RETRY_AFTER_S = 60


def stat_reserve(limit: int, share: float) -> int:
    """The slots of `limit` kept for STAT: `share` of them rounded up, and always one left for routine work."""
    return min(limit - 1, math.ceil(limit * share))


class ConcurrencyLimit:
    """In-flight requests to one backend.

    The 429's Retry-After is the wait this backend's own history suggests: how long a slot is
    typically held (a moving average), less how long the oldest holder has held one already.
    """

    def __init__(self, backend: str, limit: int, stat_share: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.backend = backend
        self.limit = limit
        self.stat_reserved = stat_reserve(limit, stat_share)
        self._clock = clock
        self._held_since: list[float] = []  # one entry per slot held
        self.typical_hold_s: float | None = None

    @property
    def in_flight(self) -> int:
        return len(self._held_since)

    def acquire(self, priority: Priority = Priority.ROUTINE) -> float:
        """A slot, or BackendSaturated; returns the ticket that `release` takes. Routine work may not take the
        slots kept for STAT."""
        now = self._clock()
        open_to = self.limit if priority is Priority.STAT else self.limit - self.stat_reserved
        if self.in_flight >= open_to:
            kept = self.stat_reserved if priority is Priority.ROUTINE else 0
            raise BackendSaturated(self.backend, self.in_flight, self._expected_wait_s(now), kept_for_stat=kept)
        self._held_since.append(now)
        return now

    def release(self, ticket: float) -> None:
        self._held_since.remove(ticket)
        held = self._clock() - ticket
        self.typical_hold_s = held if self.typical_hold_s is None else 0.8 * self.typical_hold_s + 0.2 * held

    def _expected_wait_s(self, now: float) -> int:
        if self.typical_hold_s is None:
            return 1
        oldest = min(self._held_since)
        return max(1, min(MAX_RETRY_AFTER_S, math.ceil(self.typical_hold_s - (now - oldest))))


class Admitted:
    """The slots one request holds; given back once, on `release()` or when its `with` block ends."""

    def __init__(self, held: list[tuple[ConcurrencyLimit, float]]) -> None:
        self._held = held

    def release(self) -> None:
        held, self._held = self._held, []
        for limit, ticket in held:
            limit.release(ticket)

    def __enter__(self) -> Admitted:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.release()

    async def holding(self, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """`body`, with the slots held until it is finished or abandoned: a relayed stream occupies its backend."""
        try:
            async for chunk in body:
                yield chunk
        finally:
            self.release()


class Admission:
    def __init__(self, limits: Mapping[Role, ConcurrencyLimit]) -> None:
        self.limits = dict(limits)

    def admit(self, *roles: Role, priority: Priority = Priority.ROUTINE) -> Admitted:
        """A slot on each backend named, or BackendSaturated naming the first that is full (and none held)."""
        held: list[tuple[ConcurrencyLimit, float]] = []
        try:
            for role in roles:
                limit = self.limits[role]
                held.append((limit, limit.acquire(priority)))
        except BackendSaturated:
            Admitted(held).release()
            raise
        return Admitted(held)
