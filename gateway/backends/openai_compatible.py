"""Any OpenAI-compatible chat server as a backend: vLLM (ChexFract, the report model), llama.cpp, Ollama, TGI.

The pipeline's calls go through the official `openai` SDK (`AsyncOpenAI`) with
the backend's base URL and API key; the pass-through relay stays on plain
httpx so that a client gets the backend's bytes unchanged. Admission (the
concurrency limit) is the caller's: gateway/admission.py, before any call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx2
import openai
from openai.types.chat import ChatCompletionChunk
from openai.types.completion_usage import CompletionUsage

from gateway.backends.base import FailureTranslator, inference_probe, probe, upstream_reason
from gateway.backends.calls import ChatAnswer, ChatCall, StreamPiece
from gateway.backends.health import Readiness
from gateway.errors import BackendAuthFailed, BackendFailed
from gateway.protocol import FinishReason, Usage
from gateway.settings import ProbePolicy
from services.contract.roles import Role


@dataclass(frozen=True)
class Relayed:
    """An upstream response passed through unchanged: status, content type and body bytes as they come."""

    status: int
    content_type: str
    body: AsyncIterator[bytes]


def _usage(usage: CompletionUsage | None) -> Usage:
    if usage is None:  # a server that reports none: counted as zero, never guessed
        return Usage()
    return Usage(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens, total_tokens=usage.total_tokens)


def _finish(reason: str | None) -> FinishReason:
    return "length" if reason == "length" else "stop"


def _piece(chunk: ChatCompletionChunk) -> StreamPiece:
    choice = chunk.choices[0] if chunk.choices else None
    return StreamPiece(
        text=(choice.delta.content or "") if choice else "",
        finish_reason=_finish(choice.finish_reason) if choice and choice.finish_reason else None,
        usage=_usage(chunk.usage) if chunk.usage else None,
    )


class ChatBackend:
    def __init__(
        self,
        name: Role,
        model: str,
        http: httpx2.AsyncClient,
        sdk: openai.AsyncOpenAI,
        failures: FailureTranslator,
        api_key: str | None,
        probes: ProbePolicy,
    ) -> None:
        self.name = name
        self.model = model
        self.url = str(http.base_url)
        self._http = http
        self._sdk = sdk
        self._failures = failures
        self._auth = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._probe_timeout_s = probes.timeout_s
        self.readiness = Readiness(failures.breaker, self._probe, probes)

    async def ready(self) -> tuple[bool, str]:
        return await self.readiness.check()

    async def _probe(self) -> tuple[bool, str]:
        ok, why = await self._serving()
        if not ok:
            return ok, why
        ok, probed = await self._one_token()
        return ok, probed if why == "ready" else f"{probed}; {why}"

    async def _one_token(self) -> tuple[bool, str]:
        """One real generated token: the engine itself works, not only its API process (vllm#36960)."""
        body = {"model": self.model, "messages": [{"role": "user", "content": "Reply OK."}], "max_tokens": 1}
        timeout = self._probe_timeout_s
        request = self._http.post("/v1/chat/completions", json=body, headers=self._auth, timeout=timeout)
        return await inference_probe(request, "a one-token probe", timeout)

    async def _serving(self) -> tuple[bool, str]:
        """vLLM's /health (200 only while its engine is alive), where the server has one; then /v1/models.

        Servers without /health (llama.cpp's Python server, Ollama) answer 404 there and are judged by
        /v1/models alone. The model list also proves the gateway's key works and the model is served.
        """
        health = await probe(self._http, "/health")
        if isinstance(health, str):
            return False, health
        if health.status_code not in (200, 404):
            return False, f"/health answered {health.status_code}"
        models = await probe(self._http, "/v1/models", self._auth)
        if isinstance(models, str):
            return False, models
        if models.status_code in (401, 403):
            return False, f"the backend refused the gateway's API key ({models.status_code})"
        if models.status_code != 200:
            return False, f"/v1/models answered {models.status_code}: {upstream_reason(models)}"
        served = _model_ids(models)
        if self.model not in served:
            return False, f"model {self.model!r} is not served here (serves: {', '.join(served) or 'nothing'})"
        return True, "ready" if health.status_code == 200 else "ready (no /health: judged by /v1/models)"

    async def engine_version(self) -> str | None:
        """vLLM's `GET /version`; None for a server without it."""
        answer = await probe(self._http, "/version", self._auth)
        if isinstance(answer, str) or answer.status_code != 200:
            return None
        try:
            version = answer.json().get("version")
        except (ValueError, AttributeError):
            return None
        return f"vllm {version}" if isinstance(version, str) else None

    async def count_tokens(self, text: str) -> int | None:
        """`text` counted by the backend's own tokenizer (vLLM's /tokenize); None where it cannot say.

        None for a server without the endpoint (llama.cpp, Ollama) or one that is down: the caller then
        cannot refuse up front, and the report stage reports an overflow as it would any failure.
        """
        body = {"model": self.model, "prompt": text, "add_special_tokens": False}
        try:
            answer = await self._http.post("/tokenize", json=body, headers=self._auth, timeout=self._probe_timeout_s)
            count = answer.json().get("count") if answer.status_code == 200 else None
        except (httpx2.HTTPError, ValueError, AttributeError):
            return None
        return count if isinstance(count, int) else None

    async def complete(self, call: ChatCall) -> ChatAnswer:
        with self._failures.translate():
            arguments, extra = call.arguments(), call.engine_fields()
            completion = await self._sdk.chat.completions.create(**arguments, extra_body=extra, stream=False)
            if not completion.choices:
                raise BackendFailed(self.name, "answer has no choices")
        choice = completion.choices[0]
        return ChatAnswer(choice.message.content or "", _usage(completion.usage), _finish(choice.finish_reason))

    async def stream(self, call: ChatCall) -> AsyncIterator[StreamPiece]:
        """The answer as the backend generates it; closing this generator closes the connection (vLLM aborts)."""
        with self._failures.translate():
            chunks = await self._sdk.chat.completions.create(
                **call.arguments(), extra_body=call.engine_fields(), stream=True, stream_options={"include_usage": True}
            )
            async with chunks:
                async for chunk in chunks:
                    yield _piece(chunk)

    async def relay(self, body: bytes, content_type: str) -> Relayed:
        """Pass a client's request through; streamed answers are relayed chunk by chunk, never buffered."""
        with self._failures.translate():
            headers = {"content-type": content_type, **self._auth}
            request = self._http.build_request("POST", "/v1/chat/completions", content=body, headers=headers)
            response = await self._http.send(request, stream=True)
        if response.status_code in (401, 403):  # the gateway's key for the backend, not the client's: never a 401 to it
            await response.aclose()
            with self._failures.translate(admit=False):
                raise BackendAuthFailed(self.name, response.status_code)
        content_type = response.headers.get("content-type", "application/json")
        return Relayed(response.status_code, content_type, self._relay_body(response))

    async def _relay_body(self, response: httpx2.Response) -> AsyncIterator[bytes]:
        try:
            with self._failures.translate(admit=False):
                async for chunk in response.aiter_raw():
                    yield chunk
        finally:
            await response.aclose()


def _model_ids(response: httpx2.Response) -> list[str]:
    try:
        data: Any = response.json().get("data", [])
        return [str(item["id"]) for item in data if isinstance(item, dict) and "id" in item]
    except (ValueError, AttributeError, TypeError):
        return []
