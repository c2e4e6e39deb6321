"""OpenTelemetry traces of the gateway, off unless GATEWAY_OTLP_TRACES_ENDPOINT is set.

One span per request (SERVER kind, a child of the client's `traceparent` when it sends one; gateway/routes/
traced.py), one per pipeline stage (classifier, fracture, report: gateway/pipeline/clock.py), and the W3C
trace context on every backend call (gateway/routes/backend_calls.py), so a backend that traces (vLLM with
`--otlp-traces-endpoint`) joins the same trace. Spans carry the request id, the route's template, the model,
statuses and timings: never an image, a prompt, report text, a study's UID or a patient identifier.

The SDK exports in batches from its own thread (OTLP over HTTP, protobuf), so a slow or absent collector never
holds a request: spans it cannot take are dropped, and counted in the log. The provider is the gateway's own,
made in the lifespan and injected, never the process-wide global.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import requests
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from services.contract.version import VERSION

SERVICE_NAME = "cxr-gateway"
EXPORT_TIMEOUT_S = 5.0
# The W3C trace context only (`traceparent`, `tracestate`): no baggage, which could carry a client's data onwards.
PROPAGATOR = TraceContextTextMapPropagator()


@contextmanager
def gateway_tracer(endpoint: str | None) -> Iterator[trace.Tracer]:
    """The tracer of the gateway's spans: exporting to `endpoint`, or one that records nothing when it is None."""
    if endpoint is None:
        yield trace.NoOpTracer()
        return
    session = requests.Session()
    session.trust_env = False  # never through a proxy from the environment, like every other call the gateway makes
    exporter = OTLPSpanExporter(endpoint=endpoint, timeout=EXPORT_TIMEOUT_S, session=session)
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME, "service.version": VERSION}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    try:
        yield provider.get_tracer("cxr-serve.gateway", VERSION)
    finally:
        provider.shutdown()  # exports what is left, within the exporter's timeout
