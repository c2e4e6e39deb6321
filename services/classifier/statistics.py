"""Per-model inference statistics in the shape of Triton's statistics extension (`/v2/models/{name}/stats`).

Prometheus (`/metrics`) is for operators' dashboards; this is what Triton's
clients and perf_analyzer read. Only what the worker measures is reported:
request success/failure with their durations, the time requests waited for a
batch, and ONNX Runtime's compute time per batch size. Counts and nanosecond
totals only ever grow, as Triton's do.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Duration:
    count: int = 0
    ns: int = 0

    def add(self, seconds: float, count: int = 1) -> None:
        self.count += count
        self.ns += round(seconds * 1e9)

    def as_dict(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass
class InferenceStatistics:
    success: _Duration = field(default_factory=_Duration)
    fail: _Duration = field(default_factory=_Duration)
    queue: _Duration = field(default_factory=_Duration)
    compute_infer: _Duration = field(default_factory=_Duration)
    by_batch_size: defaultdict[int, _Duration] = field(default_factory=lambda: defaultdict(_Duration))
    inference_count: int = 0  # images inferred, as Triton counts a batch of N as N inferences
    execution_count: int = 0  # ONNX Runtime runs
    last_inference_ms: int = 0

    def request_done(self, seconds: float, *, ok: bool) -> None:
        (self.success if ok else self.fail).add(seconds)

    def batch_ran(self, rows: int, waited_s: list[float], compute_s: float) -> None:
        for seconds in waited_s:
            self.queue.add(seconds)
        self.compute_infer.add(compute_s, len(waited_s))
        self.by_batch_size[rows].add(compute_s)
        self.inference_count += rows
        self.execution_count += 1
        self.last_inference_ms = int(time.time() * 1000)

    def model_stats(self, name: str, version: str) -> dict[str, Any]:
        return {
            "name": name,
            "version": version,
            "last_inference": self.last_inference_ms,
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "inference_stats": {
                "success": self.success.as_dict(),
                "fail": self.fail.as_dict(),
                "queue": self.queue.as_dict(),
                "compute_infer": self.compute_infer.as_dict(),
            },
            "batch_stats": [
                {"batch_size": size, "compute_infer": duration.as_dict()} for size, duration in sorted(self.by_batch_size.items())
            ],
        }
