"""The pipeline's event model, in-process, with small implementations of the backend protocols
(gateway/backends/protocols.py; in addition to the real-stack tests).

These pin down what is hard to provoke on real servers at an exact moment: the order of events,
admission before any call, the classifier's failure cancelling ChexFract's call, a report that fails
after its first token, and slots given back when a client leaves half-way.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracer, StatusCode, Tracer
from PIL import Image

from gateway.admission import Admission, ConcurrencyLimit
from gateway.backends.calls import ChatAnswer, ChatCall, Sampling, StreamPiece
from gateway.backends.protocols import ChatModel, Classifier
from gateway.catalog import Catalog
from gateway.clinical.abstention import PublishedFigures
from gateway.clinical.consistency import ConsistencyPolicy
from gateway.clinical.content import load
from gateway.errors import BackendFailed, BackendSaturated, ReportInconsistent, ReportInvalid
from gateway.images import XrayInput
from gateway.metrics import GatewayMetrics
from gateway.pipeline.events import Accepted, Completed, FindingsReady, ReportDelta
from gateway.pipeline.stages import Pipeline, PipelineConfig, PipelineRequest
from gateway.protocol import Usage
from gateway.provenance import EngineVersions
from services.contract.classification import Classification
from services.contract.roles import Role

XRAY = XrayInput(image=b"jpeg bytes", mime="image/jpeg", text="")


async def load_xray() -> XrayInput:
    return XRAY


class InProcess:
    """What every backend protocol asks beyond its call: always ready, no engine to name."""

    url = "in-process"

    async def ready(self) -> tuple[bool, str]:
        return True, "ready (in-process)"

    async def engine_version(self) -> str | None:
        return None


class StandInClassifier(InProcess):
    name = Role.CLASSIFIER

    def __init__(self, fails: bool = False) -> None:
        self.fails = fails

    async def classify(self, image: bytes, decoded: Image.Image | None = None) -> Classification:
        await asyncio.sleep(0.01)
        if self.fails:
            raise BackendFailed("classifier", "unreachable (ConnectError)")
        return Classification(predicted_class="PNEUMONIA", confidence=0.95, probabilities={"NORMAL": 0.05, "PNEUMONIA": 0.95})


class ChatInProcess(InProcess):
    async def count_tokens(self, text: str) -> int | None:
        return len(text.split())


class Fracture(ChatInProcess):
    name = Role.FRACTURE
    model = "chexfract"

    def __init__(self) -> None:
        self.cancelled = False
        self.calls: list[ChatCall] = []

    def stream(self, call: ChatCall) -> AsyncIterator[StreamPiece]:
        raise AssertionError("the pipeline asks ChexFract for a whole answer")

    async def complete(self, call: ChatCall) -> ChatAnswer:
        self.calls.append(call)
        try:
            await asyncio.sleep(0.2)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return ChatAnswer("No fracture is seen.", Usage(prompt_tokens=200, completion_tokens=5, total_tokens=205), "stop")


# What a report model held to the request's schema writes for the stand-in findings below, in pieces.
VALID_REPORT = json.dumps(
    {
        "findings": [
            {"finding": "pneumonia", "status": "present", "evidence": "PNEUMONIA at 95%."},
            {"finding": "fracture", "status": "uncertain", "evidence": "No fracture is seen."},
        ],
        "impression": "Findings suggest pneumonia.",
        "recommendations": ["Clinical correlation."],
    }
)
PIECES = [VALID_REPORT[:20], VALID_REPORT[20:90], VALID_REPORT[90:]]


class Report(ChatInProcess):
    name = Role.REPORT
    model = "report-llm"

    def __init__(self, pieces: list[str], fail_after: int | None = None, finish_reason: str = "stop", pause_s: float = 0) -> None:
        self.pause_s = pause_s  # between pieces: a backend that keeps writing, slowly
        self.pieces = pieces
        self.fail_after = fail_after
        self.finish_reason = finish_reason
        self.calls: list[ChatCall] = []

    async def stream(self, call: ChatCall) -> AsyncIterator[StreamPiece]:
        self.calls.append(call)
        for index, text in enumerate(self.pieces):
            if index == self.fail_after:
                raise BackendFailed("report", "broke off: connection reset")
            await asyncio.sleep(self.pause_s)
            yield StreamPiece(text=text)
        usage = Usage(prompt_tokens=300, completion_tokens=3, total_tokens=303)
        yield StreamPiece(finish_reason=self.finish_reason, usage=usage)  # type: ignore[arg-type]

    async def complete(self, call: ChatCall) -> ChatAnswer:
        raise AssertionError("the pipeline streams the report")


def slots(report: int = 4, stat_share: float = 0.0) -> Admission:
    return Admission({role: ConcurrencyLimit(role, report if role is Role.REPORT else 4, stat_share) for role in Role})


def in_flight(admission: Admission) -> tuple[int, ...]:
    return tuple(admission.limits[role].in_flight for role in (Role.CLASSIFIER, Role.FRACTURE, Role.REPORT))


def pipeline(
    classifier: Classifier,
    fracture: ChatModel,
    report: ChatModel,
    deadline_s: float = 60,
    admission: Admission | None = None,
    consistency: ConsistencyPolicy = "withhold",
    tracer: Tracer | None = None,
) -> Pipeline:
    config = PipelineConfig(
        fracture=Sampling(temperature=0.3, top_p=0.9, max_tokens=24),
        report=Sampling(temperature=0.0, top_p=1.0, max_tokens=64),
        max_indication_tokens=256,
        deadline_s=deadline_s,
        consistency=consistency,
    )
    figures = PublishedFigures(classifier_accuracy=None, fracture_recall=0.487, fracture_precision=None)
    admitted = admission or slots()
    catalog, engines = Catalog({}, {}), EngineVersions({})
    traced = tracer or NoOpTracer()
    return Pipeline(classifier, fracture, report, admitted, load(), catalog, figures, engines, config, GatewayMetrics(), traced)


async def events(p: Pipeline) -> list[object]:
    return [event async for event in p.events(PipelineRequest(image=load_xray, language="en"))]


async def test_events_come_in_order_with_summed_usage_and_the_validated_report():
    report = Report(PIECES)
    got = await events(pipeline(StandInClassifier(), Fracture(), report))
    assert isinstance(got[0], Accepted) and isinstance(got[1], FindingsReady)
    [delta] = [e for e in got[2:-1] if isinstance(e, ReportDelta)]  # the narrative, once, after validation
    done = got[-1]
    assert isinstance(done, Completed) and done.report_error is None
    assert done.report == delta.text and "Findings suggest pneumonia." in done.report
    assert "- Not detected by the fracture model (limited sensitivity): No fracture is seen." in done.report
    assert done.result.structured_report is not None and done.result.structured_report.impression == "Findings suggest pneumonia."
    assert done.usage == Usage(prompt_tokens=500, completion_tokens=8, total_tokens=508)
    assert done.result.status == "complete" and done.result.warnings == []
    schema = report.calls[0].response_format["json_schema"]["schema"]  # type: ignore[index]
    statuses = [item["properties"]["status"]["const"] for item in schema["properties"]["findings"]["prefixItems"]]
    assert statuses == ["present", "uncertain"]  # the fracture model described none: never "absent"
    findings = got[1].findings  # stage one, before any report token: the same facts the final result carries
    assert findings.classification == done.result.classification and findings.fracture == done.result.fracture
    assert findings.risk_level == done.result.risk_level and set(findings.timings_ms) == {"classifier", "fracture"}
    assert report.calls[0].sampling.max_tokens == 64 and report.calls[0].sampling.temperature == 0.0


@pytest.mark.parametrize(
    ("pieces", "finish", "reason"),
    [
        (["The lungs are clear."], "stop", "not a valid structured report"),  # a server that ignored the schema
        (PIECES[:2], "length", "cut at its token budget"),
        ([VALID_REPORT.replace('"present"', '"absent"')], "stop", "differ from the findings given"),
    ],
)
async def test_a_report_that_does_not_validate_is_withheld(pieces, finish, reason):
    got = await events(pipeline(StandInClassifier(), Fracture(), Report(pieces, finish_reason=finish)))
    done = got[-1]
    assert not [e for e in got if isinstance(e, ReportDelta)]
    assert isinstance(done, Completed) and isinstance(done.report_error, ReportInvalid)
    assert done.result.status == "partial" and done.result.structured_report is None
    assert reason in done.result.warnings[0].message and done.result.warnings[0].stage == "report"
    assert done.report == load().text("report_unavailable", "en")
    assert done.finish_reason == ("length" if finish == "length" else "error")  # a cut report keeps "length"


async def test_a_report_failing_after_its_first_token_is_a_typed_partial_result():
    done = (await events(pipeline(StandInClassifier(), Fracture(), Report(PIECES, fail_after=1))))[-1]
    assert isinstance(done, Completed) and isinstance(done.report_error, BackendFailed)
    assert done.result.status == "partial" and done.result.report_available is False
    assert [(w.stage, w.message) for w in done.result.warnings] == [
        ("report", "report backend failed: broke off: connection reset")
    ]
    assert done.report == load().text("report_unavailable", "en")  # a cut report is never presented as the report
    assert done.finish_reason == "error"


async def test_a_saturated_backend_refuses_before_the_image_is_touched():
    report, admission = Report(["x"]), slots(report=1)
    admission.admit(Role.REPORT)  # another request holds the only report slot
    loaded = []

    async def image() -> XrayInput:
        loaded.append(1)
        return XRAY

    with pytest.raises(BackendSaturated, match="report backend"):
        run = pipeline(StandInClassifier(), Fracture(), report, admission=admission)
        await anext(run.events(PipelineRequest(image=image, language="en")))
    assert loaded == [] and in_flight(admission) == (0, 0, 1) and report.calls == []  # all or none: nothing kept


async def test_a_failed_classifier_cancels_chexfracts_call_and_raises():
    fracture, admission = Fracture(), slots()
    with pytest.raises(BackendFailed, match="classifier backend failed"):
        await events(pipeline(StandInClassifier(fails=True), fracture, Report(["x"]), admission=admission))
    assert fracture.cancelled is True and in_flight(admission) == (0, 0, 0)


async def test_a_client_leaving_half_way_gives_every_slot_back():
    admission = slots()
    run = pipeline(StandInClassifier(), Fracture(), Report(["a", "b", "c"]), admission=admission)
    stream = run.events(PipelineRequest(image=load_xray, language="en"))
    assert isinstance(await anext(stream), Accepted)
    assert isinstance(await anext(stream), FindingsReady)
    assert in_flight(admission) == (1, 1, 1)
    await stream.aclose()  # what Starlette does when the client disconnects
    assert in_flight(admission) == (0, 0, 0)


async def test_one_deadline_bounds_the_whole_request_however_steadily_the_report_is_written():
    report = Report(PIECES * 10, pause_s=0.05)  # 30 pieces, 1.5 s: never silent long enough for a read timeout
    started = time.monotonic()
    done = (await events(pipeline(StandInClassifier(), Fracture(), report, deadline_s=0.6)))[-1]
    assert time.monotonic() - started < 1.0
    assert isinstance(done, Completed) and done.result.status == "partial" and done.finish_reason == "error"
    assert [(w.stage, w.message) for w in done.result.warnings] == [
        ("report", "report backend failed: not done within the request's deadline (0.6 s, GATEWAY_REQUEST_DEADLINE_S)")
    ]
    assert done.result.fracture is not None  # stage one finished in time and is kept


async def test_a_deadline_passing_in_stage_one_fails_the_optional_stage_only_and_the_report_is_not_started():
    report = Report(PIECES)
    done = (await events(pipeline(StandInClassifier(), Fracture(), report, deadline_s=0.1)))[-1]  # ChexFract takes 0.2 s
    assert [w.stage for w in done.result.warnings] == ["fracture", "report"]
    assert done.result.fracture is None and "deadline" in done.result.warnings[0].message
    assert report.calls == []  # no time was left for it: never called


async def test_admission_is_all_or_none_and_a_relayed_body_holds_its_slot_until_it_ends():
    admission = slots(report=1)
    with admission.admit(Role.REPORT):
        with pytest.raises(BackendSaturated, match="report backend is at its concurrency limit"):
            admission.admit(Role.CLASSIFIER, Role.FRACTURE, Role.REPORT)
        assert in_flight(admission) == (0, 0, 1)  # the classifier's and ChexFract's slots were given back
    assert in_flight(admission) == (0, 0, 0)

    async def body() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"
        yield b"data: [DONE]\n\n"

    admitted = admission.admit(Role.FRACTURE)
    relayed = admitted.holding(body())
    assert await anext(relayed) == b"data: 1\n\n" and in_flight(admission) == (0, 1, 0)
    await relayed.aclose()  # the client left half-way
    admitted.release()  # and the response's background release runs too: given back once
    assert in_flight(admission) == (0, 0, 0)


# The case: ChexFract described no fracture, and the report's impression asserts one.
CONTRADICTING_REPORT = VALID_REPORT.replace("Findings suggest pneumonia.", "Pneumonia with a rib fracture.")


async def test_a_report_contradicting_stage_one_is_withheld_naming_the_finding():
    p = pipeline(StandInClassifier(), Fracture(), Report([CONTRADICTING_REPORT]))
    got = await events(p)
    done = got[-1]
    assert not [e for e in got if isinstance(e, ReportDelta)]  # never shown, not even in a stream
    assert isinstance(done, Completed) and isinstance(done.report_error, ReportInconsistent)
    assert done.result.status == "partial" and done.result.structured_report is None
    assert [(c.finding, c.stage_one, c.stated, c.part) for c in done.result.report_contradictions] == [
        ("fracture", "not_detected", "present", "impression")
    ]
    [warning] = done.result.warnings
    assert (
        warning.stage == "report" and "the impression states fracture present; stage one has it not detected" in warning.message
    )
    assert "rib" not in warning.message  # the report's words are named, never quoted
    assert done.report == load().text("report_unavailable", "en")
    assert _counted(p, "fracture", "withhold") == 1.0


async def test_under_the_mark_policy_a_contradicting_report_is_kept_and_headed_by_a_caution():
    p = pipeline(StandInClassifier(), Fracture(), Report([CONTRADICTING_REPORT]), consistency="mark")
    done = (await events(p))[-1]
    assert isinstance(done, Completed) and done.report_error is None
    assert done.result.structured_report is not None and done.result.status == "complete"
    assert [c.part for c in done.result.report_contradictions] == ["impression"]
    assert "contradicts stage one" in done.result.warnings[0].message
    caution = load().text("report_inconsistent", "en")
    lines = done.report.splitlines()
    assert (
        lines[2].startswith(f"**{caution} the impression states fracture present") and "Pneumonia with a rib fracture." in lines
    )
    assert _counted(p, "fracture", "mark") == 1.0


async def test_a_report_that_agrees_has_no_contradictions_and_counts_none():
    p = pipeline(StandInClassifier(), Fracture(), Report(PIECES))
    done = (await events(p))[-1]
    assert isinstance(done, Completed) and done.result.report_contradictions == []
    assert _counted(p, "fracture", "withhold") == 0.0


def _counted(p: Pipeline, finding: str, policy: str) -> float:
    value = p.metrics.registry.get_sample_value("gateway_report_contradictions_total", {"finding": finding, "policy": policy})
    return value or 0.0


async def test_each_stage_is_a_span_under_the_requests_and_a_failed_stage_says_so():
    # The SDK's own provider, spans kept in memory (the export over OTLP is tests/gateway/test_tracing.py's).
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("POST /v1/chat/completions") as request:
        await events(pipeline(StandInClassifier(), Fracture(), Report(PIECES, fail_after=1), tracer=tracer))
    stages = {span.name: span for span in spans.get_finished_spans() if span.name.startswith("stage ")}
    assert set(stages) == {"stage classifier", "stage fracture", "stage report"}
    trace_id, parent = request.get_span_context().trace_id, request.get_span_context().span_id
    assert all(s.context.trace_id == trace_id and s.parent is not None and s.parent.span_id == parent for s in stages.values())
    assert stages["stage report"].status.status_code is StatusCode.ERROR  # the report broke off
    assert {stages[name].status.status_code for name in ("stage classifier", "stage fracture")} == {StatusCode.UNSET}
