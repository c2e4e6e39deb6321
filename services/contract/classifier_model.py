"""The metadata file beside each .onnx: everything the worker must know about one model.

Nothing about a particular model is hard-coded in the worker; the packaged
150x150 Xception (NHWC, nearest, x/127.5-1) and a 224x224 ResNet (NCHW,
bilinear, ImageNet mean/std) differ only in this file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputSpec(_Strict):
    name: str
    height: int = Field(gt=0, le=4096)
    width: int = Field(gt=0, le=4096)
    layout: Literal["NHWC", "NCHW"]
    colour: Literal["RGB", "L"]
    resize: Literal["nearest", "bilinear", "bicubic", "lanczos"]
    # Applied to pixel values scaled to [0, 1]: (x / 255 - mean) / std, per channel.
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def channels(self) -> int:
        return 3 if self.colour == "RGB" else 1

    @model_validator(mode="after")
    def _per_channel(self) -> InputSpec:
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(f"mean and std need {self.channels} values for colour {self.colour}")
        if any(s <= 0 for s in self.std):
            raise ValueError("std values must be positive")
        return self

    def shape(self, batch: int) -> tuple[int, int, int, int]:
        if self.layout == "NHWC":
            return (batch, self.height, self.width, self.channels)
        return (batch, self.channels, self.height, self.width)


class ModelMetadata(_Strict):
    name: str
    version: str
    input: InputSpec
    output_name: str
    output: Literal["logits", "probabilities"]
    classes: tuple[str, ...] = Field(min_length=2)
    onnx_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    source: str

    @staticmethod
    def path_for(onnx_path: Path) -> Path:
        return onnx_path.with_suffix(".json")

    @classmethod
    def read(cls, onnx_path: Path) -> ModelMetadata:
        return cls.model_validate_json(cls.path_for(onnx_path).read_text())

    @classmethod
    def read_folder(cls, folder: str | Path) -> ModelMetadata:
        """The metadata of the one model in a model folder (as the gateway is configured)."""
        (onnx_path,) = sorted(Path(folder).glob("*.onnx")) or [Path(folder) / "model.onnx"]
        return cls.read(onnx_path)

    def write(self, onnx_path: Path) -> None:
        self.path_for(onnx_path).write_text(self.model_dump_json(indent=2) + "\n")
