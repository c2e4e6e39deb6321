"""The circuit breaker's states, the cached readiness probe and the admission limit's Retry-After.

The behaviour against real failing backends is in test_process_faults.py;
here each transition is pinned down on its own.
"""

import asyncio
import contextlib
import time

import pytest

from gateway.admission import ConcurrencyLimit
from gateway.backends.health import Circuit, CircuitBreaker, Readiness
from gateway.errors import BackendFailed, BackendSaturated, BackendUnavailable, UpstreamRejected
from gateway.settings import ProbePolicy
from services.contract.probes import CachedProbe


def fail(breaker: CircuitBreaker) -> None:
    with contextlib.suppress(BackendFailed), breaker.guarded():
        raise BackendFailed("fracture", "timed out after 6 s")


def succeed(breaker: CircuitBreaker) -> None:
    with breaker.guarded():
        pass


def test_opens_after_failures_in_a_row_and_refuses_at_once_with_retry_after():
    refusals = []
    breaker = CircuitBreaker("fracture", failures=2, cooldown_s=30, on_refused=lambda: refusals.append(1))
    fail(breaker)
    succeed(breaker)  # a success in between: the count starts again
    fail(breaker)
    assert breaker.current() is Circuit.CLOSED
    fail(breaker)
    assert breaker.current() is Circuit.OPEN
    with pytest.raises(BackendUnavailable) as refused:
        succeed(breaker)
    assert refused.value.status == 503 and refused.value.headers() == {"Retry-After": "30"}
    assert "fracture backend failed: not called: its circuit is open after 2 failures" in refused.value.message
    assert refusals == [1]


def test_half_open_lets_one_trial_through_and_its_outcome_decides():
    breaker = CircuitBreaker("report", failures=1, cooldown_s=0.05)
    fail(breaker)
    time.sleep(0.06)
    assert breaker.current() is Circuit.HALF_OPEN
    with breaker.guarded(), pytest.raises(BackendUnavailable):  # the trial is out...
        succeed(breaker)  # ...and a second call is refused
    assert breaker.current() is Circuit.CLOSED
    fail(breaker)
    time.sleep(0.06)
    fail(breaker)  # the trial failed: open again, for a whole cooldown
    assert breaker.current() is Circuit.OPEN


def test_a_cancelled_trial_or_a_rejected_request_is_no_verdict():
    breaker = CircuitBreaker("report", failures=1, cooldown_s=0.05)
    fail(breaker)
    time.sleep(0.06)
    with contextlib.suppress(asyncio.CancelledError), breaker.guarded():
        raise asyncio.CancelledError  # the client left during the trial
    assert breaker.current() is Circuit.HALF_OPEN
    with contextlib.suppress(UpstreamRejected), breaker.guarded():
        raise UpstreamRejected("report", 400, "prompt too long")  # the request's fault, not the backend's
    assert breaker.current() is Circuit.HALF_OPEN and breaker.failures_in_a_row == 1
    succeed(breaker)
    assert breaker.current() is Circuit.CLOSED


async def test_probes_are_shared_cached_and_skipped_under_successful_traffic():
    calls = []

    async def probe():
        calls.append(1)
        await asyncio.sleep(0.05)
        return True, "ready (a one-token probe answered)"

    breaker = CircuitBreaker("report", failures=1, cooldown_s=60)
    readiness = Readiness(breaker, probe, ProbePolicy(fresh_s=0.3, timeout_s=1))
    verdicts = await asyncio.gather(*(readiness.check() for _ in range(5)))
    assert calls == [1] and all(ok for ok, _ in verdicts)  # five /ready callers, one probe
    await readiness.check()
    assert calls == [1]  # reused while fresh
    succeed(breaker)
    await asyncio.sleep(0.35)
    succeed(breaker)
    ok, detail = await readiness.check()
    assert ok and detail.startswith("ready (served a request") and calls == [1]  # traffic is the proof
    fail(breaker)
    ok, detail = await readiness.check()
    assert not ok and "circuit open" in detail and calls == [1]


async def test_a_failure_makes_the_next_check_probe_again():
    verdicts = iter([(True, "ready"), (False, "a one-token probe got no answer within 1 s")])

    async def probe():
        return next(verdicts)

    cached = CachedProbe(probe, fresh_s=60)
    assert (await cached.check())[0] is True
    assert (await cached.check(last_failure=time.monotonic()))[0] is False


def test_retry_after_is_the_wait_the_backends_own_history_suggests():
    now = [100.0]
    limit = ConcurrencyLimit("report", 1, clock=lambda: now[0])
    ticket = limit.acquire()
    with pytest.raises(BackendSaturated) as first:
        limit.acquire()
    assert first.value.headers() == {"Retry-After": "1"}  # no history yet: the shortest honest wait
    now[0] += 20  # a request that held its slot 20 s
    limit.release(ticket)
    limit.acquire()
    now[0] += 5
    with pytest.raises(BackendSaturated) as refused:
        limit.acquire()
    assert refused.value.headers() == {"Retry-After": "15"}  # typically 20 s, the holder is 5 s in
    assert "retry in 15 s" in refused.value.message
