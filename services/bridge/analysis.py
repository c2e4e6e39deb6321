"""Each spooled instance through the gateway's /v1/analyze, at once, and again after a fault, until it is done.

What the gateway answers decides the instance's state (services/bridge/spool.py):
- 200 with a complete result: `analysed`, the answer kept, and a delivery queued for each configured
  destination in the same transaction (services/bridge/outbox.py);
- a 4xx the gateway will always give (not 401, 408 or 429): `refused`, with the gateway's reason;
- anything else (unreachable, 5xx, 429, a partial result): retried with backoff; after
  CXR_BRIDGE_MAX_ATTEMPTS, `dead`, for an operator.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence

import httpx
from prometheus_client import Counter

from services.bridge import worker
from services.bridge.pacs.analyze import gateway_client as pacs_client
from services.bridge.pacs.analyze import reason
from services.bridge.settings import BridgeSettings
from services.bridge.spool import Received, Spool

log = logging.getLogger("bridge")

_ALWAYS_REFUSED = frozenset(range(400, 500)) - {401, 408, 429}


class Analyzer:
    def __init__(
        self,
        spool: Spool,
        gateway: httpx.AsyncClient,
        settings: BridgeSettings,
        counted: Counter,
        destinations: Sequence[str],
        analysed: Callable[[], None],
    ) -> None:
        self._spool = spool
        self._counted = counted
        self._gateway = gateway
        self._settings = settings
        self._destinations = tuple(destinations)
        self._analysed = analysed  # tells the deliveries there is work
        self.wake = asyncio.Event()

    async def run(self) -> None:
        await worker.drain(self._spool, lambda item: item.sop_instance_uid, self._analyse, self.wake, self._settings.concurrency)

    async def _analyse(self, item: Received) -> None:
        started = time.perf_counter()
        outcome = await self._call(item)
        fields: dict[str, object] = {"sop_instance_uid": item.sop_instance_uid, "priority": item.priority.value}
        fields |= {"outcome": outcome, "attempt": item.attempts + 1, "ms": round((time.perf_counter() - started) * 1000, 1)}
        log.info("analysis", extra={"fields": fields})
        self._counted.labels(outcome).inc()
        if outcome == "analysed":
            self._analysed()

    async def _call(self, item: Received) -> str:
        data = await asyncio.to_thread(self._spool.read, item.file)
        files = {"file": ("instance.dcm", data, "application/dicom")}
        try:
            form = {"language": self._settings.language, "priority": item.priority.value}
            response = await self._gateway.post("/v1/analyze", files=files, data=form)
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
        await asyncio.to_thread(self._spool.analysed, item.sop_instance_uid, json.dumps(answer), self._destinations, time.time())
        return "analysed"

    async def _retry(self, item: Received, why: str) -> str:
        at = self._settings.next_attempt_at(item.attempts, time.time())
        if at is None:
            await asyncio.to_thread(self._spool.finish, item.sop_instance_uid, "dead", why)
            return "dead"
        await asyncio.to_thread(self._spool.retry, item.sop_instance_uid, why, at)
        return "retry"


def gateway_client(settings: BridgeSettings) -> httpx.AsyncClient:
    key = settings.gateway_api_key
    secret = key.get_secret_value() if key else None
    return pacs_client(settings.gateway_url, secret, settings.gateway_timeout_s, settings.gateway_ca_file)
