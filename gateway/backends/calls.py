"""One chat call to an OpenAI-compatible backend, typed, and rendered once into the request body.

The same `ChatCall` is what the gateway sends through the `openai` SDK and what
a test or benchmark posts to a backend directly, so both always agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Sampling:
    """What one backend call may generate; `None` leaves the backend's own default."""

    max_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] = field(default_factory=list)

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

    def body(self) -> dict[str, Any]:
        body = {"model": self.model, "messages": self.messages, **self.sampling.body()}
        return body if self.response_format is None else {**body, "response_format": self.response_format}
