"""A vLLM server behind the OpenAI API: ChexFract and the report LLM."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from gateway.backends.base import ConcurrencyLimit, probe, raise_for_upstream, transport_errors
from gateway.errors import BackendFailed


@dataclass(frozen=True)
class Relayed:
    """An upstream response passed through unchanged: status, content type and body bytes as they come."""

    status: int
    content_type: str
    body: AsyncIterator[bytes]


class ChatBackend:
    def __init__(self, name: str, model: str, client: httpx.AsyncClient, limit: ConcurrencyLimit, timeout_s: float):
        self.name = name
        self.model = model
        self.url = str(client.base_url)
        self._client = client
        self._limit = limit
        self._timeout_s = timeout_s

    async def ready(self) -> tuple[bool, str]:
        # vLLM's /health answers 200 only while its engine is alive (not /version, not a TCP connect).
        return await probe(self._client, "/health")

    async def chat(self, payload: dict) -> dict:
        async with self._limit.slot():
            with transport_errors(self.name, self._timeout_s):
                response = await self._client.post("/v1/chat/completions", json=payload)
        raise_for_upstream(self.name, response)
        return response.json()

    async def chat_text(self, payload: dict) -> str:
        completion = await self.chat(payload)
        try:
            return completion["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise BackendFailed(self.name, "answer has no choices[0].message.content") from None

    async def stream_text(self, payload: dict) -> AsyncIterator[str]:
        """Content deltas of a streamed chat, as vLLM produces them."""
        async with self._limit.slot():
            with transport_errors(self.name, self._timeout_s):
                request = self._client.build_request("POST", "/v1/chat/completions", json={**payload, "stream": True})
                response = await self._client.send(request, stream=True)
                try:
                    if response.status_code >= 400:
                        await response.aread()
                        raise_for_upstream(self.name, response)
                    async for line in response.aiter_lines():
                        delta = _sse_delta(line)
                        if delta:
                            yield delta
                finally:
                    await response.aclose()

    async def relay(self, body: bytes, headers: dict[str, str]) -> Relayed:
        """Pass a client's request through; streamed answers are relayed chunk by chunk, never buffered."""
        self._limit.acquire()  # held until the relayed body is finished: the stream occupies the backend
        try:
            with transport_errors(self.name, self._timeout_s):
                request = self._client.build_request("POST", "/v1/chat/completions", content=body, headers=headers)
                response = await self._client.send(request, stream=True)
        except BaseException:
            self._limit.release()
            raise
        content_type = response.headers.get("content-type", "application/json")
        return Relayed(response.status_code, content_type, self._relay_body(response))

    async def _relay_body(self, response: httpx.Response) -> AsyncIterator[bytes]:
        try:
            with transport_errors(self.name, self._timeout_s):
                async for chunk in response.aiter_raw():
                    yield chunk
        finally:
            await response.aclose()
            self._limit.release()


def _sse_delta(line: str) -> str:
    if not line.startswith("data:"):
        return ""
    data = line[5:].strip()
    if data == "[DONE]":
        return ""
    try:
        choices = json.loads(data).get("choices") or [{}]
    except json.JSONDecodeError:
        return ""
    return (choices[0].get("delta") or {}).get("content") or ""
