"""Prometheus metrics of the gateway, on a registry of its own (made in the lifespan)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.contract.classification import Classification


class HasInFlight(Protocol):
    @property
    def in_flight(self) -> int: ...


class HasUnshipped(Protocol):
    @property
    def unshipped(self) -> int: ...


class HasCircuit(Protocol):
    def current(self) -> int: ...


_CONFIDENCE_BUCKETS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
_STAGE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160)


@dataclass
class GatewayMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "gateway_requests",
            "Requests by model (or endpoint) and HTTP status",
            ["model", "status"],
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "gateway_stage_seconds",
            "Pipeline stage latency",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "gateway_upstream_errors",
            "Failures of backend calls",
            ["backend", "kind"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "gateway_backend_in_flight",
            "Requests in flight per backend",
            ["backend"],
            registry=self.registry,
        )
        self.circuit = Gauge(
            "gateway_backend_circuit",
            "Circuit breaker per backend: 0 closed, 1 open (calls fail at once), 2 half-open (one trial call)",
            ["backend"],
            registry=self.registry,
        )
        self.circuit_refusals = Counter(
            "gateway_circuit_refusals",
            "Calls refused at once because the backend's circuit was open",
            ["backend"],
            registry=self.registry,
        )
        self.pipeline_status = Counter(
            "gateway_pipeline_results",
            "Pipeline answers by status",
            ["status"],
            registry=self.registry,
        )
        self.report_contradictions = Counter(
            "gateway_report_contradictions",
            "Reports whose text contradicts stage one, by finding and what the policy did (withhold, mark)",
            ["finding", "policy"],
            registry=self.registry,
        )

        # The classifier's outputs as they come: a shift in the share of each class, or in the confidence, with no
        # change of model is a shift in the population or the acquisition (the operations dashboard's drift panels).
        self.classifier_predictions = Counter(
            "gateway_classifier_predictions",
            "The classifier's predicted class, one count per answered X-ray",
            ["predicted_class"],
            registry=self.registry,
        )
        self.classifier_confidence = Histogram(
            "gateway_classifier_confidence",
            "The classifier's confidence in its predicted class",
            buckets=_CONFIDENCE_BUCKETS,
            registry=self.registry,
        )

        # Agreement as it happens (deploy/monitoring/: the dashboard and the alert on a low accepted share); the
        # figures with their intervals come from the verified SRs: `python -m services.bridge pacs agreement`.
        self.review_verdicts = Counter(
            "gateway_review_verdicts",
            "Radiologists' verdicts on the AI's findings, by model, weights' sha256, finding and verdict",
            ["model", "sha256", "finding", "verdict"],
            registry=self.registry,
        )

    def observe_classification(self, classification: Classification) -> None:
        self.classifier_predictions.labels(classification.predicted_class).inc()
        self.classifier_confidence.observe(classification.confidence)

    def watch_unshipped(self, count: HasUnshipped) -> None:
        Gauge(
            "gateway_audit_unshipped",
            "Audit records not yet taken by the audit repository (syslog over TLS)",
            registry=self.registry,
        ).set_function(lambda: count.unshipped)

    def watch_in_flight(self, backend: str, limit: HasInFlight) -> None:
        self.in_flight.labels(backend).set_function(lambda: limit.in_flight)

    def watch_circuit(self, backend: str, breaker: HasCircuit) -> None:
        self.circuit.labels(backend).set_function(lambda: int(breaker.current()))
