"""OpenTelemetry traces (gateway/tracing.py): a real gateway exports its spans over OTLP/HTTP to a receiver that
decodes them with the OpenTelemetry protocol's own messages (opentelemetry-proto), the HIS's `traceparent` is
their parent, each stage is a span, no span carries content, and every backend call carries the trace context."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import httpx
import httpx2
import openai
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NoOpTracer

from gateway.routes.backend_calls import call_id_hook
from services.contract.roles import Role
from tests.gateway.conftest import xray_message
from tests.http_peers import reply, serve

HIS_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"  # the W3C Trace Context specification's example ids
HIS_SPAN = "00f067aa0ba902b7"
INDICATION = "Tracing check: productive cough, MRN 4455667"


class Collector:
    """An OTLP/HTTP traces receiver on 127.0.0.1: what a hospital's OpenTelemetry Collector takes."""

    def __init__(self) -> None:
        self.exports: list[ExportTraceServiceRequest] = []
        received = self.exports

        class Receiver(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                assert self.path == "/v1/traces" and self.headers["Content-Type"] == "application/x-protobuf"
                received.append(ExportTraceServiceRequest.FromString(body))
                reply(self, 200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

            def log_message(self, *args: object) -> None:
                pass

        self.server, root = serve(Receiver)
        self.url = f"{root}/v1/traces"

    def spans(self) -> list[tuple[dict[str, str], Span]]:
        """Every span received, with its resource's attributes."""
        found = []
        for export in self.exports:
            for resource_spans in export.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                found += [(resource, span) for scope in resource_spans.scope_spans for span in scope.spans]
        return found


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    running = Collector()
    yield running
    running.server.shutdown()


def _attributes(span: Span) -> dict[str, object]:
    return {a.key: a.value.string_value or a.value.int_value for a in span.attributes}


def test_a_request_is_one_trace_under_the_his_span_with_a_span_per_stage(start_gateway, collector, sample_images):
    gateway = start_gateway(GATEWAY_OTLP_TRACES_ENDPOINT=collector.url, OTEL_BSP_SCHEDULE_DELAY="200")
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0, timeout=300)
    headers = {"traceparent": f"00-{HIS_TRACE}-{HIS_SPAN}-01", "X-Request-ID": "his-traced-1"}
    image = next(iter(sample_images.values()))
    client.chat.completions.create(model="cxr-report", messages=xray_message(image, INDICATION), extra_headers=headers)
    deadline = time.monotonic() + 30
    while not any(span.name.startswith("stage report") for _, span in collector.spans()) and time.monotonic() < deadline:
        time.sleep(0.3)
    spans = [(resource, span) for resource, span in collector.spans() if span.trace_id.hex() == HIS_TRACE]
    (request,) = [span for _, span in spans if span.kind == Span.SPAN_KIND_SERVER]
    assert request.name == "POST /v1/chat/completions" and request.parent_span_id.hex() == HIS_SPAN
    assert _attributes(request) | {"http.response.status_code": 200, "cxr.request_id": "his-traced-1"} == _attributes(request)
    stages = {span.name: span for _, span in spans if span.name.startswith("stage ")}
    assert set(stages) == {"stage classifier", "stage fracture", "stage report"}
    assert all(span.parent_span_id == request.span_id for span in stages.values())
    assert {resource["service.name"] for resource, _ in spans} == {"cxr-gateway"}
    # Ids, routes, stages and statuses: never the indication, the image or the report.
    carried = " ".join(f"{span.name} {_attributes(span)}" for _, span in spans)
    assert "MRN" not in carried and "cough" not in carried and "base64" not in carried


def test_a_collector_that_never_answers_holds_no_request(start_gateway):
    with socket.create_server(("127.0.0.1", 0)) as silent:  # takes connections (the kernel's backlog), never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1/traces"
        gateway = start_gateway(GATEWAY_OTLP_TRACES_ENDPOINT=url, OTEL_BSP_SCHEDULE_DELAY="50")
        started = time.monotonic()
        assert all(httpx.get(f"{gateway.url}/v1/models", timeout=10).status_code == 200 for _ in range(5))
        # Each export waits out its 5 s timeout in the SDK's thread; on a request's path, five would take 25 s.
        assert time.monotonic() - started < 4


async def test_every_backend_call_carries_the_current_trace_context_and_none_without_one():
    tracer = TracerProvider().get_tracer("test")
    tag = call_id_hook(Role.CLASSIFIER)
    with tracer.start_as_current_span("stage classifier") as span:
        traced = httpx2.Request("POST", "http://127.0.0.1:1/v2/models/x/infer")
        await tag(traced)
    context = span.get_span_context()
    assert traced.headers["traceparent"] == f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    with NoOpTracer().start_as_current_span("off"):  # tracing off: the call carries its id, no trace context
        untraced = httpx2.Request("POST", "http://127.0.0.1:1/v2/models/x/infer")
        await tag(untraced)
    assert "traceparent" not in untraced.headers and untraced.headers["X-Request-ID"]
