"""The loop that drains a durable queue (the spool's analyses, the outbox's deliveries), a bounded number at once.

Woken by an event the moment there is new work (no polling of anything), and at the next retry that is
due. Work in flight is the queue's, not this loop's: a bridge killed half-way finds it due again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Protocol, TypeVar

# The longest sleep without a wake-up: what an operator replays from another process (the CLI) is taken
# up within it, and a clock jump never strands a retry for long.
IDLE_S = 5.0

Item = TypeVar("Item")


class Queue(Protocol[Item]):
    def due(self, now: float, limit: int) -> list[Item]: ...

    def next_due(self) -> float | None: ...


async def drain(
    queue: Queue[Item],
    key: Callable[[Item], Hashable],
    handle: Callable[[Item], Awaitable[None]],
    wake: asyncio.Event,
    concurrency: int,
) -> None:
    """Forever: every due item through `handle`, at most `concurrency` at once, none twice at the same time.
    `handle` takes care of its own faults; what it raises stops the loop (a bug, not a fault)."""
    busy: set[Hashable] = set()
    slots = asyncio.Semaphore(concurrency)

    async def one(item: Item) -> None:
        try:
            async with slots:
                await handle(item)
        finally:
            busy.discard(key(item))
            wake.set()  # a slot is free: look for more

    async with asyncio.TaskGroup() as tasks:
        while True:
            wake.clear()
            due = await asyncio.to_thread(queue.due, time.time(), concurrency * 2)
            for item in due:
                if key(item) not in busy:
                    busy.add(key(item))
                    tasks.create_task(one(item))
            # Work in flight wakes the loop when it ends; else sleep until the next retry is due.
            when = None if due else await asyncio.to_thread(queue.next_due)
            wait = IDLE_S if when is None else min(IDLE_S, max(0.05, when - time.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=wait)
