"""Per-stage start offsets and durations, so a reader of the answer can see the fan-out overlap."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from opentelemetry.trace import StatusCode, Tracer

from gateway.protocol import StageTiming
from services.contract.roles import Role

T = TypeVar("T")


@dataclass
class StageClock:
    """Per-stage start offsets and durations, so a reader can see the fan-out overlap; each stage a span too
    (gateway/tracing.py: a tracer that records nothing while tracing is off)."""

    tracer: Tracer
    origin: float = field(default_factory=time.perf_counter)
    stages: dict[str, StageTiming] = field(default_factory=dict)

    @contextlib.contextmanager
    def measure(self, stage: Role) -> Iterator[None]:
        started = time.perf_counter()
        ok = False
        with self.tracer.start_as_current_span(f"stage {stage}", attributes={"cxr.stage": str(stage)}) as span:
            try:
                yield
                ok = True
            finally:
                self.stages[stage] = StageTiming(
                    started_ms=round((started - self.origin) * 1000, 2),
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                    ok=ok,
                )
                if not ok:
                    span.set_status(StatusCode.ERROR)

    async def run(self, stage: Role, call: Awaitable[T]) -> T:
        with self.measure(stage):
            return await call

    def total(self) -> dict[str, StageTiming]:
        elapsed = round((time.perf_counter() - self.origin) * 1000, 2)
        return {**self.stages, "total": StageTiming(started_ms=0.0, duration_ms=elapsed, ok=True)}
