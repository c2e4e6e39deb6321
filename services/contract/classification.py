"""Raw classifier outputs → a classification: the one post-processing the worker and the gateway share."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict

from services.contract.classifier_model import ModelMetadata


class Classification(BaseModel):
    """One image's classification: the worker's /classify answer and the gateway's `cxr.classification`."""

    model_config = ConfigDict(frozen=True)

    predicted_class: str
    confidence: float
    probabilities: dict[str, float]


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=1, keepdims=True))


def classify_outputs(outputs: np.ndarray, metadata: ModelMetadata) -> list[Classification]:
    """One classification per row of a batch of raw outputs (logits or probabilities, as the metadata says)."""
    probabilities = softmax(outputs) if metadata.output == "logits" else outputs
    results = []
    for row in probabilities:
        best = int(np.argmax(row))
        results.append(
            Classification(
                predicted_class=metadata.classes[best],
                confidence=float(row[best]),
                probabilities={name: float(p) for name, p in zip(metadata.classes, row, strict=True)},
            )
        )
    return results
