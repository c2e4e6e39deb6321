"""Export the packaged Keras pneumonia classifier to ONNX, with a parity check on real X-rays.

    python -m scripts.modelbuild.keras_classifier --out models/pneumonia-classifier

Keras' own `model.export(format="onnx")` fails on this model (legacy
TorchScript exporter), so the torch-backend Keras model is wrapped in a
`torch.nn.Module` and exported with the dynamo exporter and a dynamic batch
axis. Parity: Keras and ONNX Runtime run the same
preprocessed tensors of the 16 sample X-rays; the export fails if any output
differs by more than 1e-3. The Keras outputs are kept as the reference the
worker's tests compare against.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported; TensorFlow is not installed

import numpy as np
import torch

from scripts.classifier_export import CardText, ExportResult, check_parity, export_onnx, load_sample_batch, write_outputs
from scripts.modelbuild import packages
from scripts.modelbuild.packages import Package
from services.contract import modelcard
from services.contract.classifier_model import InputSpec

# What pneumonia-model-package's own preprocessing does: RGB,
# 150x150 nearest-neighbour, x/127.5 - 1, channels last.
INPUT = InputSpec(
    name="input",
    height=150,
    width=150,
    layout="NHWC",
    colour="RGB",
    resize="nearest",
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
)
CLASSES = ("NORMAL", "PNEUMONIA")


class _KerasAsTorch(torch.nn.Module):
    def __init__(self, keras_model: torch.nn.Module) -> None:
        super().__init__()
        self.keras_model = keras_model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.keras_model(images, training=False)


def _output_kind(keras_model) -> str:
    """Read from the model itself whether its last layer already applies softmax."""
    activation = getattr(keras_model.layers[-1], "activation", None)
    return "probabilities" if getattr(activation, "__name__", "") == "softmax" else "logits"


def export(package: Package, samples_dir: Path, out: Path) -> ExportResult:
    import keras

    keras_model = keras.saving.load_model(package.path("keras"), compile=False)
    names, batch = load_sample_batch(samples_dir, INPUT)
    with torch.no_grad():
        reference = np.asarray(keras_model(torch.from_numpy(batch), training=False).cpu())
    onnx_path = out / "model.onnx"
    export_onnx(_KerasAsTorch(keras_model).eval(), INPUT, onnx_path)
    max_diff = check_parity(onnx_path, batch, reference)
    return write_outputs(
        onnx_path,
        INPUT,
        CLASSES,
        _output_kind(keras_model),
        names,
        reference,
        max_diff,
        name="pneumonia-classifier",
        version=f"xception-val-acc-0.861+{package.name}-{package.version}",
        source=f"{package.name}=={package.version}:{package.files['keras']}",
        card_source=(package.name, package.version, package.files["keras"]),
        card=CardText(
            description=(
                "Xception pneumonia classifier (NORMAL/PNEUMONIA) trained by the package author on the Kermany "
                "pediatric chest X-ray set, reported val accuracy 0.861; a development stand-in for the hospital's "
                "own validated classifier. Not a medical device; no clinical use."
            ),
            licence=f"{package.licence}; sample images CC BY 4.0 (Kermany et al.)",
            commercial_use=False,  # the package declares no licence: nothing grants commercial use
            performance=[
                modelcard.PublishedMetric(
                    metric="val_accuracy",
                    value=0.861,
                    source=f"{package.name} {package.version}: the author's validation split (file name of the weights)",
                )
            ],
            limits=[
                "trained on pediatric chest X-rays (Kermany et al.); adult X-rays are outside its training data",
                "two classes only (NORMAL, PNEUMONIA): it does not detect any other finding",
            ],
        ),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--samples", type=Path, default=Path("models/samples"))
    parser.add_argument("--downloads", type=Path, default=Path("models/.downloads"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    export(packages.fetch("pneumonia-model-package", args.downloads), args.samples, args.out)


if __name__ == "__main__":
    main()
