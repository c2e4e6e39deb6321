"""The worker's domain logic, free of HTTP: images or tensors in, classifications out."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from services.classifier.batcher import DynamicBatcher
from services.classifier.model import OnnxClassifier
from services.contract import dicom, images
from services.contract.classification import Classification, classify_outputs
from services.contract.dicom import DicomPolicy
from services.contract.probes import CachedProbe, Verdict


@dataclass(frozen=True)
class ProbeSettings:
    fresh_s: float
    timeout_s: float


class TensorError(ValueError):
    """A v2 input tensor does not fit the model (name, shape or datatype); a 4xx."""


@dataclass(frozen=True)
class TimedClassification:
    classification: Classification
    latency_ms: float


class ClassifierService:
    def __init__(
        self,
        name: str,
        model: OnnxClassifier,
        batcher: DynamicBatcher,
        preprocess_pool: ThreadPoolExecutor,
        dicom_policy: DicomPolicy,
        probe: ProbeSettings,
    ) -> None:
        self.name = name  # the served name (CLASSIFIER_MODEL_NAME), as vLLM's --served-model-name
        self.model = model
        self.batcher = batcher
        self._pool = preprocess_pool
        self._dicom = dicom_policy  # also carries the pixel limit for JPEG and PNG
        self._probe_timeout_s = probe.timeout_s
        self._readiness = CachedProbe(self._one_tensor, probe.fresh_s)

    async def ready(self) -> Verdict:
        """Whether an inference can be served now: the batcher runs, and ONNX Runtime answers a real tensor."""
        if not self.batcher.running:
            return False, "the batcher has stopped"
        return await self._readiness.check(self.batcher.last_success)

    async def _one_tensor(self) -> Verdict:
        # Straight to the session (thread-safe), not through the batcher: a probe is not an inference in
        # the statistics; a session that hangs still fails it by the timeout.
        blank = np.zeros(self.model.metadata.input.shape(1), dtype=np.float32)
        try:
            await asyncio.wait_for(asyncio.to_thread(self.model.run, blank), self._probe_timeout_s)
        except TimeoutError:
            return False, f"ONNX Runtime did not run a blank tensor within {self._probe_timeout_s:g} s"
        except Exception as error:  # noqa: BLE001 - whatever the runtime raises, the verdict is "not ready"
            return False, f"ONNX Runtime failed a blank tensor: {type(error).__name__}"
        return True, "ready (one-tensor probe ran)"

    async def classify(self, image: bytes) -> TimedClassification:
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        with self.batcher.announce():
            tensor = await loop.run_in_executor(self._pool, self._prepare, image)
        outputs = await self.batcher.submit(tensor[np.newaxis])
        (result,) = classify_outputs(outputs, self.model.metadata)
        return TimedClassification(result, (time.perf_counter() - started) * 1000)

    def _prepare(self, image: bytes) -> np.ndarray:
        return images.to_tensor(dicom.decode_xray(image, self._dicom), self.model.metadata.input)

    def check_tensor_spec(self, name: str, datatype: str, shape: list[int]) -> None:
        """A v2 input's description against the model's, before any of its values are read."""
        spec = self.model.metadata.input
        expected = spec.shape(shape[0] if shape else 0)
        if name != spec.name:
            raise TensorError(f"unknown input {name!r}; this model's input is {spec.name!r}")
        if datatype != "FP32":
            raise TensorError(f"input {name!r} must be FP32, got {datatype}")
        if len(shape) != 4 or shape[0] < 1 or tuple(shape[1:]) != expected[1:]:
            raise TensorError(f"input {name!r} must have shape [N, {', '.join(map(str, expected[1:]))}], got {shape}")

    async def infer(self, tensor: np.ndarray) -> np.ndarray:
        return await self.batcher.submit(tensor)
