"""The X-ray pipeline's stages: admission, classifier ∥ ChexFract, rules, the report model (see __init__.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from opentelemetry.trace import Tracer

from gateway.admission import Admission
from gateway.backends.calls import ChatCall, Sampling
from gateway.backends.protocols import ChatModel, Classifier
from gateway.catalog import Catalog
from gateway.clinical import abstention, consistency, fracture_findings, narrative, rules, structured
from gateway.clinical.consistency import ConsistencyPolicy, Contradiction
from gateway.clinical.content import ClinicalContent, FindingName, Language
from gateway.clinical.structured import StructuredReport
from gateway.errors import BackendFailed, GatewayError, IndicationTooLong, ReportInconsistent, ReportInvalid
from gateway.images import XrayInput, data_uri
from gateway.metrics import GatewayMetrics
from gateway.pipeline import merge
from gateway.pipeline.clock import StageClock
from gateway.pipeline.events import Accepted, Completed, FindingsReady, PipelineEvent, ReportDelta
from gateway.pipeline.merge import Findings
from gateway.pipeline.requests import ReportFacts, fracture_call, report_call
from gateway.protocol import (
    CxrFindings,
    CxrResult,
    FinishReason,
    FractureResult,
    StageWarning,
    Usage,
)
from gateway.provenance import EngineVersions, provenance
from services.contract.priority import Priority
from services.contract.roles import Role

T = TypeVar("T")
# English prose averages ~4 characters a token in the tokenizers of the report models; 8 is beyond any.
_MOST_CHARACTERS_PER_TOKEN = 8


XrayLoader = Callable[[], Awaitable[XrayInput]]


@dataclass(frozen=True)
class PipelineRequest:
    image: XrayLoader  # decodes and checks the X-ray; called once the request holds its slots
    language: Language
    # What the client set for the report model; the rest is the role's default.
    report: Sampling = field(default_factory=Sampling)
    priority: Priority = Priority.ROUTINE  # STAT: the slots kept for it, and first in each engine's queue


@dataclass(frozen=True)
class PipelineConfig:
    fracture: Sampling  # the roles' defaults (models.yaml)
    report: Sampling
    max_indication_tokens: int  # what the report prompt leaves of the report model's context for the indication
    deadline_s: float  # one end-to-end budget for classifier, ChexFract and the report together
    consistency: ConsistencyPolicy  # a report whose text contradicts stage one: withheld or marked


@dataclass
class _Run:
    """One request's state as it moves through the stages."""

    request: PipelineRequest
    xray: XrayInput
    deadline: float  # the event loop's clock: when every stage must be done
    disclaimer: str  # the answer's notice, in its language, with the stand-in notice while one is due
    clock: StageClock
    warnings: list[StageWarning] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)

    def failed(self, stage: Role, error: GatewayError) -> None:
        self.warnings.append(StageWarning(stage=stage, message=error.message))


@dataclass
class _Report:
    """The report stage: the model's JSON as it arrives, then the validated report and its narrative."""

    pieces: list[str] = field(default_factory=list)
    finish_reason: FinishReason = "stop"
    structured: StructuredReport | None = None
    contradictions: list[Contradiction] = field(default_factory=list)
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
        classifier: Classifier,
        fracture: ChatModel,
        report: ChatModel,
        admission: Admission,
        clinical: ClinicalContent,
        catalog: Catalog,
        figures: abstention.PublishedFigures,
        engines: EngineVersions,
        config: PipelineConfig,
        metrics: GatewayMetrics,
        tracer: Tracer,
    ) -> None:
        self.classifier = classifier
        self.fracture = fracture
        self.report = report
        self.admission = admission
        self.clinical = clinical
        self.models = list(catalog.models.values())
        self.stand_in = not catalog.clinical_use
        self.figures = figures
        self.engines = engines
        self.config = config
        self.metrics = metrics
        self.tracer = tracer

    async def events(self, request: PipelineRequest) -> AsyncIterator[PipelineEvent]:
        roles = (Role.CLASSIFIER, Role.FRACTURE, Role.REPORT)
        with self.admission.admit(*roles, priority=request.priority):  # before any work, all or none
            run = self._run(request, await request.image())
            await self._check_indication(run.xray.text)
            yield Accepted()
            findings = await self._stage_one(run)
            found = self._findings(run, findings)  # built once: streamed now, and the result's base at the end
            yield FindingsReady(found)
            report = await self._report(run, findings)
            if report.available:
                yield ReportDelta(report.narrative)
            yield await self._completed(run, found, report)

    def _run(self, request: PipelineRequest, xray: XrayInput) -> _Run:
        deadline = asyncio.get_running_loop().time() + self.config.deadline_s
        disclaimer = self.clinical.disclaimer(request.language, stand_in=self.stand_in)
        return _Run(request, xray, deadline, disclaimer, StageClock(self.tracer))

    async def _report(self, run: _Run, findings: Findings) -> _Report:
        """The report model's JSON, validated (fail closed: invalid output is a failed stage) and rendered."""
        report = _Report()
        try:
            with run.clock.measure(Role.REPORT):
                await self._before_deadline(run, Role.REPORT, lambda: self._write(report, findings, run))
                validated = self._validated(report, structured.expected(findings.assessed))
                report.structured = self._consistent(report, validated, findings)
        except GatewayError as error:
            report.error = error
            # A report cut at its budget keeps the backend's "length"; any other failure says "error".
            report.finish_reason = "length" if report.finish_reason == "length" else "error"
            run.failed(Role.REPORT, error)
            return report
        language = run.request.language
        caution = None
        if report.contradictions:  # kept under the `mark` policy: said in the warnings and atop the narrative
            named = "; ".join(c.describe() for c in report.contradictions)
            run.warnings.append(StageWarning(stage=Role.REPORT, message=f"the report's text contradicts stage one: {named}"))
            caution = f"{self.clinical.text('report_inconsistent', language)} {named}"
        report.narrative = narrative.render(
            self.clinical, report.structured, findings.assessed, language, run.disclaimer, caution=caution
        )
        return report

    def _consistent(self, report: _Report, validated: StructuredReport, findings: Findings) -> StructuredReport:
        """The validated report read back against stage one; withheld on a contradiction unless the policy marks it."""
        cues = self.clinical.rules.report_consistency
        report.contradictions = consistency.contradictions(validated, findings.assessed, cues)
        for contradiction in report.contradictions:
            self.metrics.report_contradictions.labels(contradiction.finding, self.config.consistency).inc()
        if report.contradictions and self.config.consistency == "withhold":
            raise ReportInconsistent([c.describe() for c in report.contradictions])
        return validated

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

    def _validated(self, report: _Report, expected: list[tuple[FindingName, structured.ReportStatus]]) -> StructuredReport:
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
        self.metrics.observe_classification(classification)
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

    def _fracture_call(self, xray: XrayInput, priority: Priority) -> ChatCall:
        prompt = self.clinical.fracture_prompt
        return fracture_call(self.fracture.model, prompt, data_uri(xray), self.config.fracture, priority)

    async def _fracture(self, run: _Run) -> FractureResult | None:
        try:
            call = self._fracture_call(run.xray, run.request.priority)
            describe = self._before_deadline(run, Role.FRACTURE, lambda: self.fracture.complete(call))
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
        sampling = request.report.over(self.config.report)
        facts = ReportFacts(
            language=request.language,
            classification=findings.classification,
            fracture_text=findings.fracture.text if findings.fracture else None,
            risk_text=findings.assessment.risk_level.text,
            indication=run.xray.text.strip(),
            assessed=findings.assessed,
            priority=request.priority,
        )
        return report_call(self.report.model, self.clinical, facts, sampling)

    async def _completed(self, run: _Run, found: CxrFindings, report: _Report) -> Completed:
        language = run.request.language
        text = report.narrative if report.available else self.clinical.text("report_unavailable", language)
        return Completed(
            result=await self._result(run, found, report),
            report=text,
            usage=run.usage,
            finish_reason=report.finish_reason,
            report_error=report.error,
        )

    def _findings(self, run: _Run, findings: Findings) -> CxrFindings:
        timings, warnings = dict(run.clock.stages), list(run.warnings)
        return merge.cxr_findings(findings, run.request.language, run.xray.source, timings, warnings, run.disclaimer)

    async def _result(self, run: _Run, found: CxrFindings, report: _Report) -> CxrResult:
        timings = run.clock.total()
        engines = await self.engines.get()
        made = provenance(self.clinical, self.models, engines, run.request.language)
        warnings, contradictions = list(run.warnings), report.contradictions
        result = merge.cxr_result(found, timings, warnings, report.structured, contradictions, self.models, made)
        self.metrics.pipeline_status.labels(result.status).inc()
        for stage, timing in timings.items():
            self.metrics.stage_seconds.labels(stage).observe(timing.duration_ms / 1000)
        return result
