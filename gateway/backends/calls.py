"""One chat call to an OpenAI-compatible backend and its answer, typed; the call rendered once into the request body.

The same `ChatCall` is what the gateway sends through the `openai` SDK and what
a test or benchmark posts to a backend directly, so both always agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.protocol import FinishReason, Usage
from services.contract.priority import Priority

# vLLM's `priority` (served with --scheduling-policy priority, as every profile in deploy/models.yaml is): lower
# is scheduled first, 0 is its default. Only a STAT call carries the field, so that a routine call is the same
# request to any OpenAI-compatible server, and a vLLM started without that policy refuses only STAT calls.
ENGINE_PRIORITY = {Priority.STAT: -1}


@dataclass(frozen=True)
class Sampling:
    """What one backend call may generate: a role's defaults (models.yaml), what a client asked, or the two
    merged (`over`). `None` leaves the value to whatever comes under it, in the end the backend's own default."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] = field(default_factory=list)

    def over(self, defaults: Sampling) -> Sampling:
        """These settings, with `defaults` wherever none is set."""
        return Sampling(
            max_tokens=self.max_tokens if self.max_tokens is not None else defaults.max_tokens,
            temperature=self.temperature if self.temperature is not None else defaults.temperature,
            top_p=self.top_p if self.top_p is not None else defaults.top_p,
            seed=self.seed if self.seed is not None else defaults.seed,
            stop=self.stop or defaults.stop,
        )

    def body(self) -> dict[str, Any]:
        values = {"max_tokens": self.max_tokens, "temperature": self.temperature, "top_p": self.top_p, "seed": self.seed}
        rendered = {key: value for key, value in values.items() if value is not None}
        return {**rendered, "stop": self.stop} if self.stop else rendered


@dataclass(frozen=True)
class ChatCall:
    model: str
    messages: list[dict[str, Any]]
    sampling: Sampling
    response_format: dict[str, Any] | None = None  # vLLM's structured output: {"type": "json_schema", ...}
    priority: Priority = Priority.ROUTINE

    def body(self) -> dict[str, Any]:
        """The request body as posted to the backend."""
        return {**self.arguments(), **self.engine_fields()}

    def arguments(self) -> dict[str, Any]:
        """OpenAI's own parameters: what the `openai` SDK's create takes by name."""
        body = {"model": self.model, "messages": self.messages, **self.sampling.body()}
        return body if self.response_format is None else {**body, "response_format": self.response_format}

    def engine_fields(self) -> dict[str, Any]:
        """The engine's own fields, which the SDK sends as its `extra_body`."""
        return {"priority": ENGINE_PRIORITY[self.priority]} if self.priority in ENGINE_PRIORITY else {}


@dataclass(frozen=True)
class ChatAnswer:
    text: str
    usage: Usage
    finish_reason: FinishReason


@dataclass(frozen=True)
class StreamPiece:
    """One step of a streamed answer: a text delta, and on the last steps the finish reason and usage."""

    text: str = ""
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
