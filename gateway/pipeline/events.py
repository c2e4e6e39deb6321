"""The pipeline's typed events: what one cxr-report request produces, in order.

    Accepted         the request holds its backend slots and its image passed the checks; no backend was
                     called yet. A stream may send its headers now: every refusal (429, 400) came before
    FindingsReady    stage one is done (classifier ∥ ChexFract, rules applied): the first byte may go out,
                     and it may carry stage one's findings
    ReportDelta?     the narrative report, once the report model's JSON has validated (none when it did not)
    Completed        the merged result, usage and finish reason; a report failure is carried, typed

The non-streamed route collects them; the streamed route encodes each as it comes.
Nothing here knows HTTP, JSON or SSE.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.errors import GatewayError
from gateway.protocol import CxrFindings, CxrResult, FinishReason, Usage


@dataclass(frozen=True)
class Accepted:
    pass


@dataclass(frozen=True)
class FindingsReady:
    findings: CxrFindings


@dataclass(frozen=True)
class ReportDelta:
    text: str


@dataclass(frozen=True)
class Completed:
    result: CxrResult
    report: str  # the report as written, or the "report unavailable" text when the report stage failed
    usage: Usage  # the sum of every backend's usage
    finish_reason: FinishReason  # "length" when the report hit its token budget
    report_error: GatewayError | None  # why the report stage failed; None when it did not


PipelineEvent = Accepted | FindingsReady | ReportDelta | Completed
