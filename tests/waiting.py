"""Waiting for what a running service does after it answers (log lines, restarts, counters)."""

import time


def wait_until(condition, timeout_s: float, what: str) -> float:
    """Seconds until `condition()` held; fails naming `what` after `timeout_s`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout_s, f"{what} not within {timeout_s} s"
        time.sleep(0.2)
    return time.monotonic() - started
