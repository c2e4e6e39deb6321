"""The X-ray pipeline, free of HTTP: classifier ∥ ChexFract, then rules, then the report model.

`Pipeline.events()` is the whole merge, streamed or not: one async generator
of typed events (gateway/pipeline/events.py). `collect()` is the same run for
a non-streamed answer.

- Admission before work: a request takes a slot on all three backends at once,
  before its image is even base64-decoded (`PipelineRequest.image` is called only
  then), so a saturated backend is a 429 that costs nothing, before the first
  byte, and never a stream cut half-way.
- The classifier is required: without it there is nothing honest to report
  (BackendFailed → 503, and ChexFract's call is cancelled). ChexFract and the
  report model are not: when one fails, the result says `partial`, names the
  stage in `warnings`, and leaves that section empty; nothing is made up.
- The report is schema-locked (gateway/clinical/structured.py): the model's JSON
  is collected, validated, and only then rendered into the narrative; output
  that does not validate fails the stage (`partial`, the reason named).
- Cancellation: closing the generator (the client left) cancels whatever
  backend call is pending; the backend sees its connection close and aborts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from gateway.backends.calls import ChatCall, Sampling
from gateway.backends.open_inference import ClassifierBackend
from gateway.backends.openai_compatible import ChatBackend
from gateway.clinical import ClinicalContent, Language, abstention, fracture_findings, narrative, rules, structured
from gateway.clinical.structured import StructuredReport
from gateway.errors import BackendFailed, GatewayError, IndicationTooLong, ReportInvalid
from gateway.images import XrayInput, data_uri
from gateway.metrics import GatewayMetrics
from gateway.pipeline.events import Accepted, Completed, FindingsReady, PipelineEvent, ReportDelta
from gateway.pipeline.requests import ReportFacts, fracture_call, report_call
from gateway.protocol import (
    ClassificationResult,
    CodedText,
    CxrFindings,
    CxrResult,
    DicomSource,
    FindingAssessment,
    FinishReason,
    FractureResult,
    ModelInfo,
    StageTiming,
    StageWarning,
    Usage,
)
from gateway.provenance import EngineVersions, provenance
from gateway.settings import SamplingDefaults
from services.contract.roles import Role

T = TypeVar("T")
# English prose averages ~4 characters a token in the tokenizers of the report models; 8 is beyond any.
_MOST_CHARACTERS_PER_TOKEN = 8


@dataclass(frozen=True)
class ReportOptions:
    """What a client may set for the report model; `None` takes the role's default from models.yaml."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] = field(default_factory=list)


XrayLoader = Callable[[], Awaitable[XrayInput]]


@dataclass(frozen=True)
class PipelineRequest:
    image: XrayLoader  # decodes and checks the X-ray; called once the request holds its slots
    language: Language
    report: ReportOptions = ReportOptions()


@dataclass(frozen=True)
class PipelineConfig:
    fracture: SamplingDefaults
    report: SamplingDefaults
    max_indication_tokens: int  # what the report prompt leaves of the report model's context for the indication
    deadline_s: float  # one end-to-end budget for classifier, ChexFract and the report together


@dataclass
class StageClock:
    """Per-stage start offsets and durations, so a reader can see the fan-out overlap."""

    origin: float = field(default_factory=time.perf_counter)
    stages: dict[str, StageTiming] = field(default_factory=dict)

    @contextlib.contextmanager
    def measure(self, stage: Role) -> Iterator[None]:
        started = time.perf_counter()
        ok = False
        try:
            yield
            ok = True
        finally:
            self.stages[stage] = StageTiming(
                started_ms=round((started - self.origin) * 1000, 2),
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                ok=ok,
            )

    async def run(self, stage: Role, call: Awaitable[T]) -> T:
        with self.measure(stage):
            return await call

    def total(self) -> dict[str, StageTiming]:
        elapsed = round((time.perf_counter() - self.origin) * 1000, 2)
        return {**self.stages, "total": StageTiming(started_ms=0.0, duration_ms=elapsed, ok=True)}


@dataclass
class _Run:
    """One request's state as it moves through the stages."""

    request: PipelineRequest
    xray: XrayInput
    deadline: float  # the event loop's clock: when every stage must be done
    clock: StageClock = field(default_factory=StageClock)
    warnings: list[StageWarning] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)

    def failed(self, stage: Role, error: GatewayError) -> None:
        self.warnings.append(StageWarning(stage=stage, message=error.message))


@dataclass(frozen=True)
class Findings:
    """Stage one's results, with the rules applied: what the report prompt is built from."""

    classification: ClassificationResult
    fracture: FractureResult | None
    assessment: rules.Assessment
    assessed: list[abstention.Assessed]


@dataclass
class _Report:
    """The report stage: the model's JSON as it arrives, then the validated report and its narrative."""

    pieces: list[str] = field(default_factory=list)
    finish_reason: FinishReason = "stop"
    structured: StructuredReport | None = None
    narrative: str = ""
    error: GatewayError | None = None

    @property
    def json_text(self) -> str:
        return "".join(self.pieces)

    @property
    def available(self) -> bool:
        return self.structured is not None


class Pipeline:
    def __init__(
        self,
        classifier: ClassifierBackend,
        fracture: ChatBackend,
        report: ChatBackend,
        clinical: ClinicalContent,
        models: list[ModelInfo],
        figures: abstention.PublishedFigures,
        engines: EngineVersions,
        config: PipelineConfig,
        metrics: GatewayMetrics,
    ) -> None:
        self.classifier = classifier
        self.fracture = fracture
        self.report = report
        self.clinical = clinical
        self.models = models
        self.figures = figures
        self.engines = engines
        self.config = config
        self.metrics = metrics

    async def events(self, request: PipelineRequest) -> AsyncIterator[PipelineEvent]:
        with self._admitted():
            run = _Run(request, await request.image(), asyncio.get_running_loop().time() + self.config.deadline_s)
            await self._check_indication(run.xray.text)
            yield Accepted()
            findings = await self._stage_one(run)
            yield FindingsReady(self._findings(run, findings, run.clock.stages))
            report = await self._report(run, findings)
            if report.available:
                yield ReportDelta(report.narrative)
            yield await self._completed(run, findings, report)

    async def _report(self, run: _Run, findings: Findings) -> _Report:
        """The report model's JSON, validated (fail closed: invalid output is a failed stage) and rendered."""
        report = _Report()
        try:
            with run.clock.measure(Role.REPORT):
                await self._before_deadline(run, Role.REPORT, lambda: self._write(report, findings, run))
                report.structured = self._validated(report, structured.expected(findings.assessed))
        except GatewayError as error:
            report.error = error
            # A report cut at its budget keeps the backend's "length"; any other failure says "error".
            report.finish_reason = "length" if report.finish_reason == "length" else "error"
            run.failed(Role.REPORT, error)
            return report
        language = run.request.language
        report.narrative = narrative.render(
            self.clinical, report.structured, findings.assessed, language, self._disclaimer(language)
        )
        return report

    async def _write(self, report: _Report, findings: Findings, run: _Run) -> None:
        async for piece in self.report.stream(self._report_call(findings, run)):
            report.pieces.append(piece.text)
            report.finish_reason = piece.finish_reason or report.finish_reason
            run.usage += piece.usage or Usage()

    async def _before_deadline(self, run: _Run, stage: Role, call: Callable[[], Awaitable[T]]) -> T:
        """A stage's call, cut when the request's deadline passes, and never made once it has passed.

        Backend timeouts bound each call's silences (a read timeout); this bounds the whole request,
        however steadily a backend keeps writing.
        """
        failure = BackendFailed(
            stage, f"not done within the request's deadline ({self.config.deadline_s:g} s, GATEWAY_REQUEST_DEADLINE_S)"
        )
        if asyncio.get_running_loop().time() >= run.deadline:
            raise failure
        try:
            async with asyncio.timeout_at(run.deadline):
                return await call()
        except TimeoutError:
            raise failure from None

    def _validated(
        self, report: _Report, expected: list[tuple[abstention.FindingName, structured.ReportStatus]]
    ) -> StructuredReport:
        if report.finish_reason == "length":
            raise ReportInvalid("the report model's JSON was cut at its token budget (max_tokens) before it was complete")
        try:
            return structured.validate(report.json_text, expected)
        except structured.ReportRejected as error:
            raise ReportInvalid(str(error)) from None

    async def collect(self, request: PipelineRequest) -> Completed:
        """The whole pipeline for a non-streamed answer: its last event."""
        async for event in self.events(request):
            if isinstance(event, Completed):
                return event
        raise AssertionError("the pipeline always ends with a Completed event")

    async def _check_indication(self, text: str) -> None:
        """Refuse up front an indication that would overflow the report model's context (400, never a partial).

        A token is at least one byte, so text within the limit in UTF-8 bytes needs no count; longer text is
        counted by the report backend's own tokenizer (Chinese is 2-3 tokens a character on SmolLM2's).
        """
        limit = self.config.max_indication_tokens
        if len(text.encode()) <= limit:
            return
        if len(text) > limit * _MOST_CHARACTERS_PER_TOKEN:  # too long for any tokenizer: not even sent to count
            raise IndicationTooLong(f"{len(text)} characters", limit)
        tokens = await self.report.count_tokens(text)
        if tokens is not None and tokens > limit:
            raise IndicationTooLong(f"{tokens} tokens for the report model", limit)

    @contextlib.contextmanager
    def _admitted(self) -> Iterator[None]:
        """A slot on every backend, or 429 naming the saturated one, before any work is done."""
        with contextlib.ExitStack() as slots:
            for backend in (self.classifier, self.fracture, self.report):
                slots.enter_context(backend.limit.slot())
            yield

    # --- stage one: classifier and ChexFract, concurrently -------------------------------------------

    async def _stage_one(self, run: _Run) -> Findings:
        try:
            async with asyncio.TaskGroup() as group:
                xray = run.xray
                classify = self._before_deadline(run, Role.CLASSIFIER, lambda: self.classifier.classify(xray.image, xray.pixels))
                classified = group.create_task(run.clock.run(Role.CLASSIFIER, classify))
                described = group.create_task(self._fracture(run))
        except ExceptionGroup as failed:  # the classifier failed; ChexFract's call has been cancelled
            raise failed.exceptions[0] from None
        classification, fracture = classified.result(), described.result()
        language = run.request.language
        facts = rules.Facts(
            predicted_class=classification.predicted_class,
            confidence=classification.confidence,
            fracture_suspected=fracture.suspected if fracture else None,
        )
        assessed = [
            abstention.pneumonia(
                self.clinical,
                self.figures,
                classification.predicted_class,
                classification.confidence,
                classification.probabilities,
                language,
            ),
            abstention.fracture(self.clinical, self.figures, facts.fracture_suspected, classification.confidence, language),
        ]
        assessment = rules.assess(self.clinical, facts, language)
        return Findings(classification=classification, fracture=fracture, assessment=assessment, assessed=assessed)

    def fracture_call(self, xray: XrayInput) -> ChatCall:
        defaults = self.config.fracture
        sampling = Sampling(max_tokens=defaults.max_tokens, temperature=defaults.temperature, top_p=defaults.top_p)
        return fracture_call(self.fracture.model, self.clinical.fracture_prompt, data_uri(xray), sampling)

    async def _fracture(self, run: _Run) -> FractureResult | None:
        try:
            describe = self._before_deadline(run, Role.FRACTURE, lambda: self.fracture.complete(self.fracture_call(run.xray)))
            answer = await run.clock.run(Role.FRACTURE, describe)
        except GatewayError as error:
            run.failed(Role.FRACTURE, error)
            return None
        run.usage += answer.usage
        finding = fracture_findings.parse(answer.text, self.clinical.rules.fracture_terms)
        return FractureResult(text=answer.text, suspected=finding.suspected, evidence=finding.evidence)

    # --- stage two: the report, and the merge ----------------------------------------------------------

    def _report_call(self, findings: Findings, run: _Run) -> ChatCall:
        request = run.request
        options, defaults = request.report, self.config.report
        sampling = Sampling(
            max_tokens=options.max_tokens or defaults.max_tokens,
            temperature=defaults.temperature if options.temperature is None else options.temperature,
            top_p=defaults.top_p if options.top_p is None else options.top_p,
            seed=options.seed,
            stop=options.stop,
        )
        facts = ReportFacts(
            language=request.language,
            classification=findings.classification,
            fracture_text=findings.fracture.text if findings.fracture else None,
            risk_text=findings.assessment.risk_level.text,
            indication=run.xray.text.strip(),
            assessed=findings.assessed,
        )
        return report_call(self.report.model, self.clinical, facts, sampling)

    async def _completed(self, run: _Run, findings: Findings, report: _Report) -> Completed:
        language = run.request.language
        text = report.narrative if report.available else self.clinical.text("report_unavailable", language)
        return Completed(
            result=await self._result(run, findings, report),
            report=text,
            usage=run.usage,
            finish_reason=report.finish_reason,
            report_error=report.error,
        )

    def _disclaimer(self, language: Language) -> str:
        """The notice that the models are stand-ins goes only when every model's card says `clinical_use: true`."""
        disclaimer = self.clinical.text("disclaimer", language)
        if not all(m.clinical_use for m in self.models):
            disclaimer += " " + self.clinical.text("stand_in_notice", language)
        return disclaimer

    def _findings(self, run: _Run, findings: Findings, timings: dict[str, StageTiming]) -> CxrFindings:
        language = run.request.language
        a = findings.assessment
        source = run.xray.source
        return CxrFindings(
            language=language,
            source=DicomSource(**dataclasses.asdict(source)) if source is not None else None,
            classification=findings.classification,
            fracture=findings.fracture,
            risk_level=CodedText(code=a.risk_level.code, text=a.risk_level.text),
            confidence_interpretation=CodedText(code=a.confidence_interpretation.code, text=a.confidence_interpretation.text),
            recommendations=a.recommendations,
            assessments=[FindingAssessment(**dataclasses.asdict(assessed)) for assessed in findings.assessed],
            timings_ms=dict(timings),
            warnings=list(run.warnings),
            disclaimer=self._disclaimer(language),
        )

    async def _result(self, run: _Run, findings: Findings, report: _Report) -> CxrResult:
        timings = run.clock.total()
        status = "complete" if report.available and findings.fracture is not None else "partial"
        self.metrics.pipeline_status.labels(status).inc()
        for stage, timing in timings.items():
            self.metrics.stage_seconds.labels(stage).observe(timing.duration_ms / 1000)
        engines = await self.engines.get()
        return CxrResult(
            **self._findings(run, findings, timings).model_dump(),
            status=status,
            report_available=report.available,
            structured_report=report.structured,
            models=self.models,
            provenance=provenance(self.clinical, self.models, engines, run.request.language),
        )
