"""The pneumonia classifier over the Open Inference Protocol (KServe v2) REST API.

The gateway preprocesses the image itself, as the model's metadata file
describes, and sends the tensor to `/v2/models/{name}/infer`: exactly what
Triton Inference Server's ONNX backend accepts, so Triton can replace the
worker with a URL change.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import Executor

import httpx
import numpy as np

from gateway.backends.base import ConcurrencyLimit, probe, raise_for_upstream, transport_errors
from gateway.errors import BackendFailed, ImageRejected
from gateway.protocol import ClassificationResult
from services.classifier import preprocess
from services.classifier.metadata import ModelMetadata
from services.classifier.model import softmax


class ClassifierBackend:
    name = "classifier"

    def __init__(
        self,
        metadata: ModelMetadata,
        client: httpx.AsyncClient,
        limit: ConcurrencyLimit,
        timeout_s: float,
        pool: Executor,
        max_image_pixels: int,
    ) -> None:
        self.metadata = metadata
        self.model = metadata.name
        self.url = str(client.base_url)
        self._client = client
        self._limit = limit
        self._timeout_s = timeout_s
        self._pool = pool
        self._max_image_pixels = max_image_pixels

    async def ready(self) -> tuple[bool, str]:
        server_ready, detail = await probe(self._client, "/v2/health/ready")
        if not server_ready:
            return False, detail
        return await probe(self._client, f"/v2/models/{self.model}/ready")

    def _infer_body(self, image: bytes) -> bytes:
        """Decode, preprocess and JSON-encode one image: CPU work, run in the thread pool."""
        tensor = preprocess.prepare(image, self.metadata.input, self._max_image_pixels)
        request = {
            "inputs": [
                {
                    "name": self.metadata.input.name,
                    "shape": [1, *tensor.shape],
                    "datatype": "FP32",
                    "data": tensor.ravel().tolist(),
                }
            ]
        }
        return json.dumps(request, separators=(",", ":")).encode()

    async def classify(self, image: bytes) -> ClassificationResult:
        loop = asyncio.get_running_loop()
        try:
            body = await loop.run_in_executor(self._pool, self._infer_body, image)
        except preprocess.ImageError as error:
            raise ImageRejected(str(error), param="messages") from None
        async with self._limit.slot():
            with transport_errors(self.name, self._timeout_s):
                response = await self._client.post(
                    f"/v2/models/{self.model}/infer", content=body, headers={"content-type": "application/json"}
                )
        raise_for_upstream(self.name, response)
        return self._result(response.json())

    def _result(self, body: dict) -> ClassificationResult:
        try:
            output = next(o for o in body["outputs"] if o["name"] == self.metadata.output_name)
            raw = np.asarray(output["data"], dtype=np.float32).reshape(1, len(self.metadata.classes))
        except (KeyError, StopIteration, ValueError, TypeError):
            raise BackendFailed(self.name, "answer has no usable output tensor") from None
        probabilities = softmax(raw)[0] if self.metadata.output == "logits" else raw[0]
        best = int(np.argmax(probabilities))
        return ClassificationResult(
            predicted_class=self.metadata.classes[best],
            confidence=float(probabilities[best]),
            probabilities={c: float(p) for c, p in zip(self.metadata.classes, probabilities, strict=True)},
        )
