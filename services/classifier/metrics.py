"""Prometheus metrics of one worker, on a registry of its own (made in the lifespan)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.classifier.statistics import InferenceStatistics

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 24, 32, 64, 128)


@dataclass
class WorkerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    statistics: InferenceStatistics = field(default_factory=InferenceStatistics)  # the Triton-shaped view

    def __post_init__(self) -> None:
        self.requests = Counter(
            "classifier_requests",
            "Requests by endpoint and HTTP status",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.runs = Counter("classifier_onnx_runs", "ONNX Runtime session runs (one per batch)", registry=self.registry)
        self.rows = Counter("classifier_onnx_rows", "Images run through ONNX Runtime", registry=self.registry)
        self.batch_size = Histogram(
            "classifier_batch_size",
            "Images per ONNX Runtime run",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.run_seconds = Histogram("classifier_onnx_run_seconds", "ONNX Runtime run time", registry=self.registry)
        self.queue_depth = Gauge("classifier_queue_depth", "Requests waiting for a batch", registry=self.registry)
        self.rejected = Counter(
            "classifier_rejected",
            "Requests refused by the batcher",
            ["reason"],
            registry=self.registry,
        )

    def record_run(self, rows: int, waited_s: list[float], seconds: float) -> None:
        self.runs.inc()
        self.rows.inc(rows)
        self.batch_size.observe(rows)
        self.run_seconds.observe(seconds)
        self.statistics.batch_ran(rows, waited_s, seconds)
