"""The bridge's operations endpoint (CXR_BRIDGE_HTTP_PORT): liveness, readiness and Prometheus metrics; and,
with CXR_BRIDGE_REVIEW_TOKEN set, the review API the gateway calls (services/bridge/pacs/review_api.py).

`/health` is 200 while the process serves; `/ready` is 200 while the Storage SCP listens and the state
database answers (the gateway being away does not make the bridge unready: it keeps receiving and queues);
`/metrics` has the instances per state and the deliveries per destination and state (a `dead` count above
0 wants an operator), and the C-STORE, analysis and delivery outcomes. No patient data, no UIDs in labels.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import uvicorn
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from services.bridge.outbox import DELIVERY_STATES
from services.bridge.spool import STATES
from services.bridge.state import State


@dataclass
class BridgeMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.c_store = Counter("bridge_c_store", "C-STORE requests by outcome", ["outcome"], registry=self.registry)
        self.analysis = Counter("bridge_analysis", "Analysis attempts by outcome", ["outcome"], registry=self.registry)
        self.delivery = Counter(
            "bridge_delivery", "Delivery attempts by destination and outcome", ["destination", "outcome"], registry=self.registry
        )

    def watch(self, state: State, destinations: Iterable[str]) -> None:
        self.registry.register(_Queues(state, tuple(destinations)))


class _Queues(Collector):
    def __init__(self, state: State, destinations: tuple[str, ...]) -> None:
        self._state = state
        self._destinations = destinations

    def collect(self) -> Iterable[GaugeMetricFamily]:
        instances = GaugeMetricFamily("bridge_instances", "Received instances by state", labels=["state"])
        counts = self._state.spool.counts()
        for state in STATES:
            instances.add_metric([state], counts.get(state, 0))
        yield instances
        labels = ["destination", "state"]
        deliveries = GaugeMetricFamily("bridge_deliveries", "Deliveries by destination and state", labels=labels)
        queued = self._state.outbox.counts()
        for destination in sorted(set(self._destinations) | {name for name, _ in queued}):
            for delivery_state in DELIVERY_STATES:
                deliveries.add_metric([destination, delivery_state], queued.get((destination, delivery_state), 0))
        yield deliveries


def app(state: State, metrics: BridgeMetrics, listening: Callable[[], bool], review: APIRouter | None = None) -> FastAPI:
    ops = FastAPI(title="cxr-serve bridge", docs_url=None, redoc_url=None, openapi_url=None)
    if review is not None:  # the radiologists' review, for the gateway (services/bridge/pacs/review_api.py)
        ops.include_router(review)

    @ops.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @ops.get("/ready")
    async def ready() -> JSONResponse:
        try:
            counts = state.spool.counts()
        except Exception as error:  # noqa: BLE001 - whatever the database raises, the verdict is "not ready"
            return JSONResponse({"ready": False, "detail": f"state database: {type(error).__name__}"}, status_code=503)
        if not listening():
            return JSONResponse({"ready": False, "detail": "the Storage SCP is not listening"}, status_code=503)
        return JSONResponse({"ready": True, "instances": counts})

    @ops.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return ops


class Server(uvicorn.Server):
    """uvicorn inside the bridge's own event loop: the bridge handles SIGTERM itself, then sets should_exit."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
