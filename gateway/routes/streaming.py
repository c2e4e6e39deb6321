"""The pipeline's events as OpenAI chat-completion chunks (SSE), and as one completion.

The headers and a first chunk (the assistant role) go out as soon as the
request is accepted, before any backend answers, so that a proxy with an idle
timeout sees bytes at once; SSE comments follow while the backends work. Stage
one's findings come in their own chunk (`cxr_findings`), so a viewer can show
them while the report is written. A stream always ends with `data: [DONE]`:
when stage one fails (the classifier), an OpenAI-style error event comes
first; when the report stage fails, the final chunk still carries `cxr`
(`partial`, the failed stage named, `finish_reason: "error"`) and is followed
by the error event, so the `openai` SDK raises instead of presenting a cut
report as a whole one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import GatewayError
from gateway.pipeline.events import Completed, FindingsReady, PipelineEvent, ReportDelta
from gateway.protocol import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    CxrFindings,
    CxrResult,
    Delta,
    FinishReason,
    Usage,
    completion_id,
)
from gateway.routes.errors import error_body

log = logging.getLogger("gateway")
DONE = "data: [DONE]\n\n"
KEEPALIVE = ": keep-alive\n\n"  # an SSE comment: no event, but bytes on the wire


def sse(payload: str) -> str:
    return f"data: {payload}\n\n"


def error_event(error: GatewayError) -> str:
    return sse(json.dumps(error_body(error), ensure_ascii=False))


@dataclass(frozen=True)
class ChunkFactory:
    model: str
    id: str = field(default_factory=completion_id)
    created: int = field(default_factory=lambda: int(time.time()))

    def chunk(
        self,
        delta: Delta,
        finish: FinishReason | None = None,
        cxr: CxrResult | None = None,
        usage: Usage | None = None,
        findings: CxrFindings | None = None,
        bundle: dict[str, Any] | None = None,
    ) -> str:
        choices = [] if usage is not None else [ChunkChoice(delta=delta, finish_reason=finish)]
        payload = ChatCompletionChunk(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=choices,
            cxr=cxr,
            usage=usage,
            cxr_findings=findings,
            fhir=bundle,
        )
        return sse(payload.model_dump_json(exclude_none=True))


async def encode_stream(
    events: AsyncIterator[PipelineEvent],
    model: str,
    include_usage: bool,
    finished: Callable[[Completed], dict[str, Any] | None],
    failed: Callable[[GatewayError], None],
    keepalive_s: float,
) -> AsyncIterator[str]:
    """The role chunk at once, then `cxr_findings`, the report, the final chunk with `cxr`, and [DONE].

    `finished` sees the Completed event and returns the FHIR Bundle for the final chunk, if one was asked for;
    `failed` sees why stage one failed. While the backends work, an SSE comment goes out every `keepalive_s`
    seconds, so a proxy with an idle timeout keeps the stream open; clients ignore comments.
    """
    chunks = ChunkFactory(model)
    yield chunks.chunk(Delta(role="assistant", content=""))
    wrote_text = False
    try:
        async for event in with_keepalive(events, keepalive_s):
            if event is None:
                yield KEEPALIVE
            elif isinstance(event, FindingsReady):
                yield chunks.chunk(Delta(content=""), findings=event.findings)
            elif isinstance(event, ReportDelta):
                wrote_text = True
                yield chunks.chunk(Delta(content=event.text))
            elif isinstance(event, Completed):
                for line in _final(chunks, event, wrote_text, include_usage, finished(event)):
                    yield line
    except GatewayError as error:  # stage one failed (the classifier): nothing honest to report
        failed(error)
        yield error_event(error)
    except Exception as error:  # a bug, not a backend: still end the stream properly, and log it
        log.exception("stream failed", exc_info=error)
        yield error_event(GatewayError("internal error in the gateway; see its log"))
    yield DONE


async def relayed_events(body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """A backend's SSE stream passed through whole events at a time; if the backend dies, an error event and [DONE].

    Bytes are held back only until the event they belong to is complete, so a cut never leaves half an
    event (which a client's SSE parser would choke on) before the error event.
    """
    pending = b""
    try:
        async for chunk in body:
            complete, separator, pending = (pending + chunk).rpartition(b"\n\n")
            if separator:
                yield complete + separator
    except GatewayError as error:
        yield (error_event(error) + DONE).encode()
        return
    if pending:
        yield pending


async def with_keepalive(events: AsyncIterator[PipelineEvent], interval_s: float) -> AsyncIterator[PipelineEvent | None]:
    """The pipeline's events, and None each time `interval_s` passes without one.

    The pending step runs as its own task, so waiting with a timeout never cancels the pipeline; when the
    client leaves, the step is cancelled and the pipeline's backend calls with it.
    """
    step: asyncio.Future[PipelineEvent] | None = None
    try:
        while True:
            step = asyncio.ensure_future(anext(events))
            while not (await asyncio.wait({step}, timeout=interval_s))[0]:
                yield None
            try:
                event = step.result()
            except StopAsyncIteration:
                return
            yield event
    finally:
        if step is not None and not step.done():
            step.cancel()


def _final(
    chunks: ChunkFactory, event: Completed, wrote_text: bool, include_usage: bool, bundle: dict[str, Any] | None
) -> list[str]:
    lines = []
    if not wrote_text:  # nothing streamed: the "report unavailable" text, so the content is never empty
        lines.append(chunks.chunk(Delta(content=event.report)))
    lines.append(chunks.chunk(Delta(), finish=event.finish_reason, cxr=event.result, bundle=bundle))
    if include_usage:
        lines.append(chunks.chunk(Delta(), usage=event.usage))
    if event.report_error is not None:
        lines.append(error_event(event.report_error))
    return lines


async def whole_answer_events(answer: ChatCompletion, include_usage: bool) -> AsyncIterator[str]:
    """An answer that exists whole (the classifier's) as a stream: the role, the content, the finish, [DONE]."""
    chunks = ChunkFactory(answer.model, id=answer.id, created=answer.created)
    (choice,) = answer.choices
    yield chunks.chunk(Delta(role="assistant", content=""))
    yield chunks.chunk(Delta(content=choice.message.content))
    yield chunks.chunk(Delta(), finish=choice.finish_reason)
    if include_usage:
        yield chunks.chunk(Delta(), usage=answer.usage)
    yield DONE


def completion(model: str, event: Completed, content: str) -> ChatCompletion:
    return ChatCompletion(
        model=model,
        choices=[Choice(message=AssistantMessage(content=content), finish_reason=event.finish_reason)],
        usage=event.usage,
        cxr=event.result,
    )
