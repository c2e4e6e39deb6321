"""Export a hospital's PyTorch ResNet checkpoint to ONNX (dynamic batch) and a torch.export program.

    python -m scripts.export_torch_resnet CHECKPOINT.pth --arch resnet50 --out models/my-classifier

The checkpoint is the format older deployment guides save:
`{"model_state_dict": ..., ...}` for a torchvision ResNet-18/34/50 whose last
layer has 2 outputs (NORMAL, PNEUMONIA), trained on 224x224 RGB with ImageNet
normalisation. Writes `model.onnx`, its metadata file `model.json` (with the
ONNX file's sha256), `model.pt2` (torch.export, the maintained successor of
TorchScript, for PyTorch-native serving), the reference outputs and a model
card. Parity with PyTorch is checked on the real sample X-rays; the export
fails above 1e-3. The checkpoint is loaded with `weights_only=True`: a
checkpoint is untrusted input and must not run code.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torchvision

from scripts.classifier_export import (
    PARITY_TOLERANCE,
    CardText,
    ExportResult,
    ParityError,
    check_parity,
    export_onnx,
    load_sample_batch,
    write_outputs,
)
from services.contract.classifier_model import InputSpec

ARCHITECTURES = ("resnet18", "resnet34", "resnet50")
IMAGENET = InputSpec(
    name="input",
    height=224,
    width=224,
    layout="NCHW",
    colour="RGB",
    resize="bilinear",
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
)


def load_checkpoint(checkpoint: Path, arch: str, classes: tuple[str, ...]) -> torch.nn.Module:
    model = getattr(torchvision.models, arch)(weights=None, num_classes=len(classes))
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model.load_state_dict(state.get("model_state_dict", state))
    return model.eval()


def export(
    checkpoint: Path, arch: str, out: Path, samples_dir: Path, classes: tuple[str, ...] = ("NORMAL", "PNEUMONIA")
) -> ExportResult:
    out.mkdir(parents=True, exist_ok=True)
    model = load_checkpoint(checkpoint, arch, classes)
    names, batch = load_sample_batch(samples_dir, IMAGENET)
    with torch.no_grad():
        reference = model(torch.from_numpy(batch)).numpy()
    onnx_path = out / "model.onnx"
    export_onnx(model, IMAGENET, onnx_path)
    max_diff = check_parity(onnx_path, batch, reference)
    _save_pt2(model, out / "model.pt2", batch, reference)
    return write_outputs(
        onnx_path,
        IMAGENET,
        classes,
        "logits",
        names,
        reference,
        max_diff,
        name=checkpoint.stem,
        version=f"{arch}-{checkpoint.stem}",
        source=f"{checkpoint.name} ({arch})",
        card_source=(checkpoint.name, "local", str(checkpoint)),
        card=CardText(
            description=f"{arch} classifier exported from {checkpoint.name}; clinical use only after local validation.",
            licence="hospital-owned checkpoint; licence as agreed by the hospital",
            commercial_use=False,  # until the hospital's agreement says otherwise: edit the card
            performance=[],  # the hospital's own validation figures go here (docs/models.md, "Model cards")
            limits=[],
        ),
    )


def _save_pt2(model: torch.nn.Module, path: Path, batch: np.ndarray, reference: np.ndarray) -> None:
    example = (torch.from_numpy(batch[:2]),)
    program = torch.export.export(model, example, dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},))
    torch.export.save(program, path)
    with torch.no_grad():
        reloaded = torch.export.load(path).module()(torch.from_numpy(batch)).numpy()
    diff = float(np.max(np.abs(reloaded - reference)))
    print(f"parity: max abs difference torch.export program vs eager PyTorch = {diff:.2e}")
    if not diff <= PARITY_TOLERANCE:
        raise ParityError(f"torch.export program differs from eager PyTorch by {diff:.2e}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--arch", choices=ARCHITECTURES, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--samples", type=Path, default=Path("models/samples"))
    args = parser.parse_args(argv)
    export(args.checkpoint, args.arch, args.out, args.samples)


if __name__ == "__main__":
    main()
