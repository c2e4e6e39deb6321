"""`python -m scripts.triton_repository --out DIR [--profile gpu]`: the classifier as a Triton model repository.

Writes `DIR/<served name>/config.pbtxt` and `DIR/<served name>/1/model.onnx`
for the profile's classifier role: the configuration the worker itself answers
on `/v2/models/{name}/config` (services/classifier/triton.py), with the
profile's batching settings, checked field by field by Triton's own
`model_config.proto` (from tritonclient) before it is written. Pointing
GATEWAY_CLASSIFIER_URL at a Triton server started on DIR replaces the worker
(docs/operators.md, "Triton instead of the worker").
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from typing import Any

from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2

from scripts.launcher import config
from services.classifier.settings import ClassifierSettings
from services.classifier.triton import TRITON_VERSION, model_config
from services.contract.classifier_model import ModelMetadata
from services.contract.paths import REPO_ROOT
from services.contract.roles import Role


def as_pbtxt(configuration: dict[str, Any]) -> str:
    """Triton's text format of a model configuration; a field or value Triton does not know raises."""
    message = json_format.ParseDict(configuration, model_config_pb2.ModelConfig())
    return text_format.MessageToString(message)


def profile_configuration(profile: str) -> tuple[Path, dict[str, Any]]:
    """The classifier's ONNX file and its Triton configuration under a profile of deploy/models.yaml."""
    stack = config.load(profile)
    role = stack.roles[Role.CLASSIFIER]
    onnx_path = Path(role.model_location(REPO_ROOT))
    # The worker's settings as the profile starts it: its CLASSIFIER_* environment over the defaults.
    settings = ClassifierSettings.model_validate(
        {key.removeprefix("CLASSIFIER_").lower(): value for key, value in role.env.items()} | {"model_path": onnx_path}
    )
    configuration = model_config(
        role.served_name,
        ModelMetadata.read(onnx_path),
        max_batch_size=settings.max_batch_size,
        max_wait_ms=settings.max_wait_ms,
        max_queue=settings.max_queue,
        timeout_s=settings.request_timeout_s,
        gpu=stack.accelerator == "gpu",
    )
    return onnx_path, configuration


def write(out: Path, profile: str) -> Path:
    onnx_path, configuration = profile_configuration(profile)
    entry = out / configuration["name"]
    (entry / TRITON_VERSION).mkdir(parents=True, exist_ok=True)
    (entry / "config.pbtxt").write_text(as_pbtxt(configuration))
    shutil.copyfile(onnx_path, entry / TRITON_VERSION / "model.onnx")
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--profile", default=os.environ.get("CXR_PROFILE", "gpu"))
    arguments = parser.parse_args()
    print(f"wrote {write(arguments.out, arguments.profile)}")


if __name__ == "__main__":
    main()
