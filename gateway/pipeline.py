"""The X-ray pipeline, free of HTTP: classifier ∥ ChexFract, then rules, then the report LLM.

The classifier is required: without it there is nothing honest to report
(BackendFailed → 503). ChexFract and the report LLM are not: when one fails,
the result says `partial`, names the stage in `warnings`, and leaves that
section empty; nothing is made up in its place.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from gateway.backends.open_inference import ClassifierBackend
from gateway.backends.openai_compatible import ChatBackend
from gateway.clinical import ClinicalContent, Language, fracture_findings, rules
from gateway.errors import BackendFailed, BackendSaturated, GatewayError, UpstreamRejected
from gateway.images import XrayInput, data_uri
from gateway.metrics import GatewayMetrics
from gateway.protocol import ClassificationResult, CodedText, CxrResult, FractureResult, ModelInfo, StageTiming

T = TypeVar("T")


def fracture_request(model: str, prompt: str, image_uri: str, max_tokens: int) -> dict:
    """The chat request ChexFract gets: the image, then the fracture question from prompts/fracture.en.md."""
    return {
        "model": model,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": image_uri}},
                    {"type": "text", "text": prompt},
                ],
            }
        ],
        "max_tokens": max_tokens,
        "temperature": 0.0,  # deterministic: the same image gives the same description
    }


def report_request(
    model: str,
    clinical: ClinicalContent,
    language: Language,
    classification: ClassificationResult,
    fracture_text: str | None,
    risk_text: str,
    indication: str,
    max_tokens: int,
) -> dict:
    """The chat request the report LLM gets: the findings put into prompts/report.<language>.md."""
    prompt = clinical.report_prompts[language].format(
        predicted_class=classification.predicted_class,
        confidence=classification.confidence,
        p_normal=classification.probabilities.get("NORMAL", 0.0),
        p_pneumonia=classification.probabilities.get("PNEUMONIA", 0.0),
        risk_level=risk_text,
        fracture_text=fracture_text if fracture_text is not None else clinical.placeholder("fracture_unavailable", language),
        indication=indication or clinical.placeholder("indication_missing", language),
        date=dt.date.today().isoformat(),
    )
    return {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0.0,
    }


@dataclass(frozen=True)
class PipelineConfig:
    fracture_max_tokens: int
    report_max_tokens: int


@dataclass
class StageClock:
    """Per-stage start offsets and durations, so a reader can see the fan-out overlap."""

    origin: float = field(default_factory=time.perf_counter)
    stages: dict[str, StageTiming] = field(default_factory=dict)

    @contextlib.contextmanager
    def measure(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        ok = False
        try:
            yield
            ok = True
        finally:
            self.stages[name] = StageTiming(
                started_ms=round((started - self.origin) * 1000, 2),
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                ok=ok,
            )

    async def run(self, name: str, call: Awaitable[T]) -> T:
        with self.measure(name):
            return await call

    def total(self) -> dict[str, StageTiming]:
        elapsed = round((time.perf_counter() - self.origin) * 1000, 2)
        return {**self.stages, "total": StageTiming(started_ms=0.0, duration_ms=elapsed, ok=True)}


@dataclass
class Findings:
    """Stage one's results, with the rules applied: what the report prompt is built from."""

    language: Language
    classification: ClassificationResult
    fracture: FractureResult | None
    assessment: rules.Assessment
    indication: str
    clock: StageClock
    warnings: list[str]


class Pipeline:
    def __init__(
        self,
        classifier: ClassifierBackend,
        fracture: ChatBackend,
        report: ChatBackend,
        clinical: ClinicalContent,
        models: list[ModelInfo],
        config: PipelineConfig,
        metrics: GatewayMetrics,
    ) -> None:
        self.classifier = classifier
        self.fracture = fracture
        self.report = report
        self.clinical = clinical
        self.models = models
        self.config = config
        self.metrics = metrics

    # --- stage one: classifier and ChexFract, concurrently ----------------------------------------

    def _fracture_payload(self, xray: XrayInput) -> dict:
        return fracture_request(
            self.fracture.model, self.clinical.fracture_prompt, data_uri(xray), self.config.fracture_max_tokens
        )

    async def _fracture(self, clock: StageClock, xray: XrayInput, warnings: list[str]) -> FractureResult | None:
        try:
            text = await clock.run("fracture", self.fracture.chat_text(self._fracture_payload(xray)))
        except BackendSaturated:
            raise
        except GatewayError as error:
            warnings.append(f"fracture: {error.message}; the fracture section is missing")
            return None
        finding = fracture_findings.parse(text, self.clinical.rules["fracture_terms"])
        return FractureResult(text=text, suspected=finding.suspected, evidence=finding.evidence)

    async def analyze(self, xray: XrayInput, language: Language) -> Findings:
        clock = StageClock()
        warnings: list[str] = []
        classification, fracture = await asyncio.gather(
            clock.run("classifier", self.classifier.classify(xray.image)),
            self._fracture(clock, xray, warnings),
        )
        facts = rules.Facts(
            predicted_class=classification.predicted_class,
            confidence=classification.confidence,
            fracture_suspected=fracture.suspected if fracture else None,
        )
        return Findings(
            language=language,
            classification=classification,
            fracture=fracture,
            assessment=rules.assess(self.clinical, facts, language),
            indication=xray.text.strip(),
            clock=clock,
            warnings=warnings,
        )

    # --- stage two: the report ----------------------------------------------------------------------

    def report_payload(self, findings: Findings) -> dict:
        return report_request(
            self.report.model,
            self.clinical,
            findings.language,
            findings.classification,
            findings.fracture.text if findings.fracture else None,
            findings.assessment.risk_level.text,
            findings.indication,
            self.config.report_max_tokens,
        )

    def result(self, findings: Findings, report_available: bool) -> CxrResult:
        lang = findings.language
        a = findings.assessment
        complete = report_available and findings.fracture is not None
        disclaimer = self.clinical.text("disclaimer", lang)
        if not all(m.clinical_use for m in self.models):
            disclaimer += " " + self.clinical.text("stand_in_notice", lang)
        timings = findings.clock.total()
        status = "complete" if complete else "partial"
        self.metrics.pipeline_status.labels(status).inc()
        for stage, timing in timings.items():
            self.metrics.stage_seconds.labels(stage).observe(timing.duration_ms / 1000)
        return CxrResult(
            status=status,
            language=lang,
            classification=findings.classification,
            fracture=findings.fracture,
            risk_level=CodedText(code=a.risk_level.code, text=a.risk_level.text),
            confidence_interpretation=CodedText(code=a.confidence_interpretation.code, text=a.confidence_interpretation.text),
            recommendations=a.recommendations,
            report_available=report_available,
            models=self.models,
            timings_ms=timings,
            warnings=findings.warnings,
            disclaimer=disclaimer,
        )

    async def run(self, xray: XrayInput, language: Language) -> tuple[str, CxrResult]:
        """The whole pipeline, for non-streaming answers: (report text, merged result)."""
        findings = await self.analyze(xray, language)
        try:
            report = await findings.clock.run("report", self.report.chat_text(self.report_payload(findings)))
        except BackendSaturated:
            raise
        except (BackendFailed, UpstreamRejected) as error:
            findings.warnings.append(f"report: {error.message}; no report was written")
            return self.clinical.text("report_unavailable", language), self.result(findings, report_available=False)
        return report, self.result(findings, report_available=bool(report.strip()))

    async def stream_report(self, findings: Findings) -> AsyncIterator[str]:
        """Report tokens as vLLM produces them; a failure is recorded in the findings' warnings."""
        try:
            with findings.clock.measure("report"):
                async for delta in self.report.stream_text(self.report_payload(findings)):
                    yield delta
        except (BackendFailed, UpstreamRejected) as error:
            findings.warnings.append(f"report: {error.message}; the report is missing or incomplete")
