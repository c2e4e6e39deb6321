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
from services.contract.classification import classify_outputs
from services.contract.dicom import DicomPolicy


class TensorError(ValueError):
    """A v2 input tensor does not fit the model (name, shape or datatype); a 4xx."""


@dataclass(frozen=True)
class TimedClassification:
    predicted_class: str
    confidence: float
    probabilities: dict[str, float]
    latency_ms: float


class ClassifierService:
    def __init__(
        self,
        name: str,
        model: OnnxClassifier,
        batcher: DynamicBatcher,
        preprocess_pool: ThreadPoolExecutor,
        dicom_policy: DicomPolicy,
    ) -> None:
        self.name = name  # the served name (CLASSIFIER_MODEL_NAME), as vLLM's --served-model-name
        self.model = model
        self.batcher = batcher
        self._pool = preprocess_pool
        self._dicom = dicom_policy  # also carries the pixel limit for JPEG and PNG

    async def classify(self, image: bytes) -> TimedClassification:
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        with self.batcher.announce():
            tensor = await loop.run_in_executor(self._pool, self._prepare, image)
        outputs = await self.batcher.submit(tensor[np.newaxis])
        (result,) = classify_outputs(outputs, self.model.metadata)
        return TimedClassification(
            result.predicted_class, result.confidence, result.probabilities, (time.perf_counter() - started) * 1000
        )

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
