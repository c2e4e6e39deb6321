"""Each spooled instance through the gateway's /v1/analyze, at once, and again after a fault, until it is done.

Woken by the SCP the moment an instance is spooled (no polling of anything), and at the next retry that is
due. What the gateway answers decides the instance's state (services/bridge/spool.py):
- 200 with a complete result: `analysed`, the answer kept for the destinations;
- a 4xx the gateway will always give (not 401, 408 or 429): `refused`, with the gateway's reason;
- anything else (unreachable, 5xx, 429, a partial result): retried with backoff; after
  CXR_BRIDGE_MAX_ATTEMPTS, `dead`, for an operator.
Work in flight is in the state database, not in memory: a bridge killed half-way starts again where it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

import httpx
from prometheus_client import Counter

from services.bridge.pacs.analyze import gateway_client as pacs_client
from services.bridge.pacs.analyze import reason
from services.bridge.settings import BridgeSettings
from services.bridge.spool import Received, Spool

log = logging.getLogger("bridge")

# The longest sleep without a wake-up: what an operator replays from another process (the CLI) is taken
# up within it, and a clock jump never strands a retry for long.
_IDLE_S = 5.0
_ALWAYS_REFUSED = frozenset(range(400, 500)) - {401, 408, 429}


class Analyzer:
    def __init__(self, spool: Spool, gateway: httpx.AsyncClient, settings: BridgeSettings, counted: Counter) -> None:
        self._spool = spool
        self._counted = counted
        self._gateway = gateway
        self._settings = settings
        self.wake = asyncio.Event()
        self._busy: set[str] = set()
        self._slots = asyncio.Semaphore(settings.concurrency)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            while True:
                self.wake.clear()
                for item in self._spool.due(time.time(), self._settings.concurrency * 2):
                    if item.sop_instance_uid not in self._busy:
                        self._busy.add(item.sop_instance_uid)
                        tasks.create_task(self._analyse(item))
                await self._sleep()

    async def _sleep(self) -> None:
        due = self._spool.next_due()
        wait = _IDLE_S if due is None else min(_IDLE_S, max(0.05, due - time.time()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout=wait)

    async def _analyse(self, item: Received) -> None:
        started = time.perf_counter()
        try:
            async with self._slots:
                outcome = await self._call(item)
        finally:
            self._busy.discard(item.sop_instance_uid)
            self.wake.set()  # a slot is free: look for more
        fields = {"sop_instance_uid": item.sop_instance_uid, "outcome": outcome, "attempt": item.attempts + 1}
        log.info("analysis", extra={"fields": {**fields, "ms": round((time.perf_counter() - started) * 1000, 1)}})
        self._counted.labels(outcome).inc()

    async def _call(self, item: Received) -> str:
        data = await asyncio.to_thread(self._spool.read, item)
        files = {"file": ("instance.dcm", data, "application/dicom")}
        try:
            response = await self._gateway.post("/v1/analyze", files=files, data={"language": self._settings.language})
        except httpx.HTTPError as error:
            return await self._retry(item, f"gateway unreachable ({type(error).__name__})")
        if response.status_code in _ALWAYS_REFUSED:
            await asyncio.to_thread(self._spool.finish, item.sop_instance_uid, "refused", reason(response))
            return "refused"
        if response.status_code != 200:
            return await self._retry(item, f"gateway answered {response.status_code}: {reason(response)}")
        answer = response.json()
        if answer["cxr"]["status"] != "complete":
            failed = "; ".join(warning["stage"] for warning in answer["cxr"]["warnings"])
            return await self._retry(item, f"partial result (failed: {failed})")
        await asyncio.to_thread(self._spool.finish, item.sop_instance_uid, "analysed", "complete", json.dumps(answer))
        return "analysed"

    async def _retry(self, item: Received, why: str) -> str:
        attempts = item.attempts + 1
        if attempts >= self._settings.max_attempts:
            await asyncio.to_thread(self._spool.finish, item.sop_instance_uid, "dead", why)
            return "dead"
        at = time.time() + self._settings.retry_delay_s(item.attempts)
        await asyncio.to_thread(self._spool.retry, item.sop_instance_uid, why, at)
        return "retry"


def gateway_client(settings: BridgeSettings) -> httpx.AsyncClient:
    key = settings.gateway_api_key
    return pacs_client(settings.gateway_url, key.get_secret_value() if key else None, settings.gateway_timeout_s)
