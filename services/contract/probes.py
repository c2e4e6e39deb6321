"""A readiness probe that does real work, cached and shared so that probing never loads the service.

Both services answer "ready" only when a real inference can be served now
(one token, one tensor), not merely when their process is up. The verdict is
reused for `fresh_s`, concurrent callers (several load balancers, Kubernetes
and Prometheus) share one probe in flight, and real traffic that succeeded
recently stands in for a probe altogether.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

Verdict = tuple[bool, str]


class CachedProbe:
    def __init__(self, probe: Callable[[], Awaitable[Verdict]], fresh_s: float) -> None:
        self._probe = probe
        self.fresh_s = fresh_s
        self._last: tuple[float, Verdict] | None = None
        self._running: asyncio.Task[Verdict] | None = None

    async def check(self, last_success: float | None = None, last_failure: float | None = None) -> Verdict:
        """The verdict: real traffic that succeeded within `fresh_s`, a recent probe, or a new one.

        Times are `time.monotonic()`. Neither a success nor a probe verdict older than the last real
        failure is reused: a backend that just failed a call is probed again at once.
        """
        now = time.monotonic()
        failed = last_failure if last_failure is not None else float("-inf")
        if last_success is not None and failed < last_success and now - last_success < self.fresh_s:
            return True, f"ready (served a request {now - last_success:.1f} s ago)"
        if self._last is not None and failed < self._last[0] and now - self._last[0] < self.fresh_s:
            return self._last[1]
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._timed())
        return await asyncio.shield(self._running)

    async def _timed(self) -> Verdict:
        verdict = await self._probe()
        self._last = (time.monotonic(), verdict)
        return verdict
