"""The 16 real chest X-rays from pneumonia-model-package (Kermany et al., CC BY 4.0)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from scripts.modelbuild.packages import Package

LABELS_FILE = "labels.json"


def label_for(filename: str) -> str:
    """The data set encodes the ground truth in the file name."""
    return "NORMAL" if filename.startswith("NORMAL") else "PNEUMONIA"


def build(package: Package, out: Path) -> None:
    images = sorted(package.path("samples").glob("*.jpeg"))
    if len(images) != 16:
        raise RuntimeError(f"expected 16 sample X-rays in {package.name}, found {len(images)}")
    out.mkdir(parents=True, exist_ok=True)
    for image in images:
        shutil.copyfile(image, out / image.name)
    labels = {image.name: label_for(image.name) for image in images}
    (out / LABELS_FILE).write_text(
        json.dumps(
            {
                "source": f"{package.name}=={package.version}",
                "licence": "CC BY 4.0 (Kermany et al., pediatric chest X-ray data set)",
                "labels": labels,
            },
            indent=2,
        )
        + "\n"
    )


def load_labels(folder: Path) -> dict[str, str]:
    return json.loads((folder / LABELS_FILE).read_text())["labels"]
