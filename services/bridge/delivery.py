"""Each pending delivery (services/bridge/outbox.py) to its destination, at once, and again after a fault.

A delivery is rebuilt from the spooled image and the kept result on every attempt (the same idempotency
keys each time). What the destination answers decides: acknowledged → `delivered`; refused, unreachable
or silent → retried with the bridge's backoff (CXR_BRIDGE_RETRY_*), then `dead` after
CXR_BRIDGE_MAX_ATTEMPTS with the receiver's reason, for an operator to replay (python -m services.bridge).
One log line per attempt: SOP Instance UID, destination, outcome, attempt, milliseconds; never the reason
(a receiver's message may quote the patient).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time

from prometheus_client import Counter
from pydicom import dcmread

from services.bridge import worker
from services.bridge.destinations import Destination, Parcel, Undelivered
from services.bridge.outbox import Outbox, Pending
from services.bridge.settings import BridgeSettings
from services.bridge.spool import Spool

log = logging.getLogger("bridge")


class Deliverer:
    def __init__(
        self, outbox: Outbox, spool: Spool, destinations: dict[str, Destination], settings: BridgeSettings, counted: Counter
    ) -> None:
        self._outbox = outbox
        self._spool = spool
        self._destinations = destinations
        self._settings = settings
        self._counted = counted
        self.wake = asyncio.Event()

    async def run(self) -> None:
        key = lambda item: (item.sop_instance_uid, item.destination)  # noqa: E731
        await worker.drain(self._outbox, key, self._deliver, self.wake, self._settings.concurrency * 2)

    async def _deliver(self, item: Pending) -> None:
        started = time.perf_counter()
        outcome = await self._attempt(item)
        fields = {"sop_instance_uid": item.sop_instance_uid, "destination": item.destination, "outcome": outcome}
        elapsed = {"attempt": item.attempts + 1, "ms": round((time.perf_counter() - started) * 1000, 1)}
        log.info("delivery", extra={"fields": {**fields, **elapsed}})
        self._counted.labels(item.destination, outcome).inc()

    async def _attempt(self, item: Pending) -> str:
        destination = self._destinations.get(item.destination)
        if destination is None:  # configured when it was queued, not now: kept for when it is again
            why = f"destination {item.destination} is not configured"
            await asyncio.to_thread(self._outbox.retry, item, why, time.time() + self._settings.retry_max_s)
            return "unconfigured"
        try:
            parcel = await asyncio.to_thread(self._parcel, item)
            acknowledged = await destination.deliver(parcel)
        except Undelivered as error:
            return await self._retry(item, str(error))
        except Exception as error:  # noqa: BLE001 - building one result must never stop the others' deliveries
            failed = {"sop_instance_uid": item.sop_instance_uid, "error": type(error).__name__}  # no message: it may quote
            log.error("delivery failed", extra={"fields": failed})  # the image's header
            return await self._retry(item, f"the bridge could not build or send it ({type(error).__name__})")
        await asyncio.to_thread(self._outbox.delivered, item, acknowledged, time.time())
        return "delivered"

    def _parcel(self, item: Pending) -> Parcel:
        return Parcel(dcmread(io.BytesIO(self._spool.read(item.file))), json.loads(item.result))

    async def _retry(self, item: Pending, why: str) -> str:
        at = self._settings.next_attempt_at(item.attempts, time.time())
        if at is None:
            await asyncio.to_thread(self._outbox.dead, item, why)
            return "dead"
        await asyncio.to_thread(self._outbox.retry, item, why, at)
        return "retry"
