"""What the gateway needs of each kind of backend: the seams. The pipeline and the routes see only these.

- `ChatModel`: an OpenAI-compatible chat server (vLLM's ChexFract and report model, llama.cpp, Ollama,
  TGI): openai_compatible.ChatBackend.
- `Classifier`: an image classifier over the Open Inference Protocol (the worker, or Triton):
  open_inference.ClassifierBackend.

Each raises only the gateway's own errors (gateway/errors.py), never its transport's. Admission is not
theirs (gateway/admission.py), nor are retries: a call is one call. The pipeline's in-process tests
(tests/gateway/test_pipeline_events.py) implement these in a few lines each.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from PIL import Image

from gateway.backends.calls import ChatAnswer, ChatCall, StreamPiece
from services.contract.classification import Classification
from services.contract.roles import Role


class Backend(Protocol):
    """What readiness needs of any backend."""

    name: Role
    url: str

    async def ready(self) -> tuple[bool, str]:
        """(ready, why): the verdict of a real call, reused while fresh (backends/health.py)."""
        ...

    async def engine_version(self) -> str | None:
        """The serving engine and its version, for the result's provenance; None where it does not say."""
        ...


class ChatModel(Backend, Protocol):
    model: str  # the name the server serves the model under

    async def complete(self, call: ChatCall) -> ChatAnswer: ...

    def stream(self, call: ChatCall) -> AsyncIterator[StreamPiece]:
        """The answer as it is generated; closing the iterator abandons the generation."""
        ...

    async def count_tokens(self, text: str) -> int | None:
        """`text` in the model's own tokens; None where the server cannot say."""
        ...


class Classifier(Backend, Protocol):
    async def classify(self, image: bytes, decoded: Image.Image | None = None) -> Classification:
        """`decoded`: the picture `image` encodes, where the caller has it already (a DICOM's)."""
        ...
