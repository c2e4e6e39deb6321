"""One ONNX model and its metadata: session creation, provider choice, outputs to probabilities."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from services.contract import modelcard
from services.contract.classifier_model import ModelMetadata

log = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """The model file, its metadata or its card is missing or inconsistent."""


class OnnxClassifier:
    def __init__(self, onnx_path: Path, providers: tuple[str, ...], intra_op_threads: int, spin_wait: bool) -> None:
        self.metadata = ModelMetadata.read(onnx_path)
        self.sha256 = modelcard.file_sha256(onnx_path)
        if self.sha256 != self.metadata.onnx_sha256:
            raise ModelLoadError(f"{onnx_path}: sha256 {self.sha256} differs from its metadata file")
        self.card = modelcard.read(onnx_path.parent)
        self.session = self._create_session(onnx_path, providers, intra_op_threads, spin_wait)
        # ONNX Runtime falls back to CPU silently when CUDA cannot load; report what actually runs.
        self.provider = self.session.get_providers()[0]
        log.info("loaded %s (sha256 %s…) on %s", onnx_path.name, self.sha256[:12], self.provider)

    @staticmethod
    def _create_session(onnx_path: Path, providers: tuple[str, ...], threads: int, spin: bool) -> ort.InferenceSession:
        available = set(ort.get_available_providers())
        usable = [p for p in providers if p in available] or ["CPUExecutionProvider"]
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(str(onnx_path), sess_options=options, providers=usable)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Raw model outputs for a preprocessed batch (blocking; call from a worker thread)."""
        (output,) = self.session.run([self.metadata.output_name], {self.metadata.input.name: batch})
        return np.asarray(output)
