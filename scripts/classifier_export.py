"""What every classifier export shares: ONNX export with a dynamic batch axis, the
parity check on real X-rays, the metadata file and the model card.

Used by scripts.modelbuild.keras_classifier (the packaged model) and export_torch_resnet
(a hospital's own ResNet checkpoint).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from services.contract import modelcard
from services.contract.classifier_model import InputSpec, ModelMetadata
from services.contract.images import prepare

PARITY_TOLERANCE = 1e-3
REFERENCE_FILE = "reference_outputs.json"
MAX_SAMPLE_PIXELS = 50_000_000


class ParityError(RuntimeError):
    """The exported model disagrees with its source framework beyond the tolerance."""


@dataclass(frozen=True)
class CardText:
    """What the model card says about an exported classifier besides its files and digests."""

    description: str
    licence: str
    commercial_use: bool
    performance: list[modelcard.PublishedMetric]
    limits: list[str]


@dataclass(frozen=True)
class ExportResult:
    onnx_path: Path
    metadata: ModelMetadata
    max_abs_diff: float


def load_sample_batch(samples_dir: Path, spec: InputSpec) -> tuple[list[str], np.ndarray]:
    """The real X-rays as one batch, preprocessed exactly as the worker will."""
    paths = sorted(samples_dir.glob("*.jpeg")) + sorted(samples_dir.glob("*.png"))
    if not paths:
        raise FileNotFoundError(f"no sample images in {samples_dir}")
    batch = np.stack([prepare(path.read_bytes(), spec, MAX_SAMPLE_PIXELS) for path in paths])
    return [path.name for path in paths], batch


def export_onnx(module: torch.nn.Module, spec: InputSpec, onnx_path: Path) -> None:
    example = torch.zeros(spec.shape(2), dtype=torch.float32)
    torch.onnx.export(
        module,
        (example,),
        str(onnx_path),
        dynamo=True,
        input_names=[spec.name],
        output_names=["output"],
        dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},),
        external_data=False,
    )


def check_parity(onnx_path: Path, batch: np.ndarray, reference: np.ndarray) -> float:
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {session.get_inputs()[0].name: batch})
    max_diff = float(np.max(np.abs(onnx_out - reference)))
    print(f"parity: max abs difference ONNX Runtime vs source framework on {len(batch)} real X-rays = {max_diff:.2e}")
    if not max_diff <= PARITY_TOLERANCE:
        raise ParityError(f"max abs difference {max_diff:.2e} exceeds {PARITY_TOLERANCE:.0e}")
    return max_diff


def write_outputs(
    onnx_path: Path,
    spec: InputSpec,
    classes: tuple[str, ...],
    output_kind: str,
    sample_names: list[str],
    reference: np.ndarray,
    max_diff: float,
    *,
    name: str,
    version: str,
    source: str,
    card_source: tuple[str, str, str],
    card: CardText,
) -> ExportResult:
    """The metadata file beside the .onnx, the source framework's outputs, and the model card."""
    folder = onnx_path.parent
    metadata = ModelMetadata(
        name=name,
        version=version,
        input=spec,
        output_name="output",
        output=output_kind,
        classes=classes,
        onnx_sha256=modelcard.file_sha256(onnx_path),
        source=source,
    )
    metadata.write(onnx_path)
    (folder / REFERENCE_FILE).write_text(
        json.dumps(
            {
                "framework_outputs": {n: row.tolist() for n, row in zip(sample_names, reference, strict=True)},
                "output": output_kind,
                "max_abs_diff_onnx": max_diff,
            },
            indent=2,
        )
        + "\n"
    )
    package, package_version, file = card_source
    modelcard.write(
        folder,
        modelcard.ModelCard(
            name=name,
            role="classifier",
            description=card.description,
            clinical_use=False,
            stand_in=True,
            source=[modelcard.Source(package=package, version=package_version, file=file)],
            licence=card.licence,
            commercial_use=card.commercial_use,
            performance=card.performance,
            limits=card.limits,
            weights_sha256={onnx_path.name: metadata.onnx_sha256},
            built_by="scripts.classifier_export",
        ),
    )
    return ExportResult(onnx_path, metadata, max_diff)
