"""The pneumonia classifier over the Open Inference Protocol (KServe v2) REST API.

The gateway preprocesses the image itself, as the model's metadata file
describes (services.contract.images), and sends the tensor to
`/v2/models/{name}/infer` in the binary tensor data extension, asking for the
output in binary too (services.contract.tensors): exactly what Triton Inference
Server's ONNX backend accepts, so Triton can replace the worker with a URL
change. The answer's raw outputs become a classification by the same function
the worker uses (services.contract.classification).
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import Executor

import httpx2
import numpy as np
from PIL import Image

from gateway.backends.base import FailureTranslator, inference_probe, probe, raise_for_upstream
from gateway.backends.health import Readiness
from gateway.errors import BackendFailed, ImageRejected
from gateway.settings import ProbePolicy
from services.contract import images, tensors
from services.contract.classification import Classification, classify_outputs
from services.contract.classifier_model import ModelMetadata
from services.contract.roles import Role


class ClassifierBackend:
    name = Role.CLASSIFIER

    def __init__(
        self,
        model: str,
        metadata: ModelMetadata,
        http: httpx2.AsyncClient,
        failures: FailureTranslator,
        pool: Executor,
        max_image_pixels: int,
        probes: ProbePolicy,
    ) -> None:
        self.model = model  # the served name (GATEWAY_CLASSIFIER_MODEL)
        self.metadata = metadata
        self.url = str(http.base_url)
        self._http = http
        self._failures = failures
        self._pool = pool
        self._max_image_pixels = max_image_pixels
        self._probe_timeout_s = probes.timeout_s
        self.readiness = Readiness(failures.breaker, self._probe, probes)

    async def ready(self) -> tuple[bool, str]:
        return await self.readiness.check()

    async def _probe(self) -> tuple[bool, str]:
        for path in ("/v2/health/ready", f"/v2/models/{self.model}/ready"):
            answer = await probe(self._http, path)
            if isinstance(answer, str):
                return False, answer
            if answer.status_code != 200:
                return False, f"{path} answered {answer.status_code}"
        return await self._one_tensor()

    async def _one_tensor(self) -> tuple[bool, str]:
        """One real inference on a blank tensor: the runtime itself works, not only the worker's HTTP server."""
        body, headers = self._request_for(np.zeros(self.metadata.input.shape(1), dtype=np.float32))
        timeout = self._probe_timeout_s
        request = self._http.post(f"/v2/models/{self.model}/infer", content=body, headers=headers, timeout=timeout)
        return await inference_probe(request, "a one-tensor probe", timeout)

    async def engine_version(self) -> str | None:
        """The worker's runtime as its model metadata states it (`parameters.runtime`); None when not stated."""
        answer = await probe(self._http, f"/v2/models/{self.model}")
        if isinstance(answer, str) or answer.status_code != 200:
            return None
        try:
            runtime = answer.json().get("parameters", {}).get("runtime")
        except (ValueError, AttributeError):
            return None
        return runtime if isinstance(runtime, str) else None

    def _infer_request(self, image: bytes, decoded: Image.Image | None) -> tuple[bytes, dict[str, str]]:
        """Decode (unless already decoded) and preprocess one image into a binary inference request: CPU work,
        run in the thread pool."""
        picture = decoded if decoded is not None else images.decode(image, self._max_image_pixels)
        return self._request_for(images.to_tensor(picture, self.metadata.input)[np.newaxis])

    def _request_for(self, tensor: np.ndarray) -> tuple[bytes, dict[str, str]]:
        header = {
            "inputs": [tensors.entry(self.metadata.input.name, tensor, binary=True)],
            "outputs": [{"name": self.metadata.output_name, "parameters": {"binary_data": True}}],
        }
        return tensors.message(header, [tensor])

    async def classify(self, image: bytes, decoded: Image.Image | None = None) -> Classification:
        """`decoded`: the picture `image` encodes, where the caller has it already (a DICOM's). Admission is
        the caller's (gateway/admission.py); this is the call itself."""
        loop = asyncio.get_running_loop()
        try:
            body, headers = await loop.run_in_executor(self._pool, self._infer_request, image, decoded)
        except images.ImageError as error:
            raise ImageRejected(str(error), param="messages") from None
        with self._failures.translate():
            response = await self._http.post(f"/v2/models/{self.model}/infer", content=body, headers=headers)
            raise_for_upstream(self.name, response)
            return self._result(response.content, response.headers.get(tensors.HEADER_LENGTH))

    def _result(self, body: bytes, header_length: str | None) -> Classification:
        """The classification from an answer in either form (binary asked for; JSON `data` accepted)."""
        try:
            head, binary = tensors.split(body, header_length)
            outputs = tensors.read(json.loads(head)["outputs"], binary)
            raw = outputs[self.metadata.output_name].reshape(1, len(self.metadata.classes))
        except (KeyError, ValueError, TypeError, AttributeError):  # TensorFormatError, JSONDecodeError: ValueErrors
            raise BackendFailed(self.name, "answer has no usable output tensor") from None
        (result,) = classify_outputs(raw, self.metadata)
        return result
