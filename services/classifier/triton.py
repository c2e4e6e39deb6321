"""The classifier as a Triton Inference Server model configuration, from the same metadata the worker runs.

The worker answers it on `/v2/models/{name}/config` (Triton's model
configuration extension, which `tritonclient.get_model_config` reads), and
`python -m scripts.modelbuild triton-repository` writes it as the
`config.pbtxt` of a Triton model repository: one description, so that Triton
can replace the worker with the same name, tensors and batching. Field names
and enum values are those of Triton's `model_config.proto`, in its JSON form.
"""

from __future__ import annotations

from typing import Any

from services.contract.classifier_model import ModelMetadata

# Triton's version folders are integers; the worker's version string goes into `parameters`.
TRITON_VERSION = "1"


def model_config(
    name: str,
    metadata: ModelMetadata,
    *,
    max_batch_size: int,
    max_wait_ms: float,
    max_queue: int,
    timeout_s: float,
    gpu: bool,
) -> dict[str, Any]:
    spec = metadata.input
    return {
        "name": name,
        "platform": "onnxruntime_onnx",
        "backend": "onnxruntime",
        "max_batch_size": max_batch_size,
        "input": [
            {
                "name": spec.name,
                "data_type": "TYPE_FP32",
                "format": f"FORMAT_{spec.layout}",
                "dims": list(spec.shape(1)[1:]),
            }
        ],
        "output": [{"name": metadata.output_name, "data_type": "TYPE_FP32", "dims": [len(metadata.classes)]}],
        # The worker's batcher, in Triton's words: the same window, queue bound and deadline.
        "dynamic_batching": {
            "max_queue_delay_microseconds": round(max_wait_ms * 1000),
            "default_queue_policy": {
                "timeout_action": "REJECT",
                "default_timeout_microseconds": round(timeout_s * 1e6),
                "max_queue_size": max_queue,
            },
        },
        "instance_group": [{"kind": "KIND_GPU" if gpu else "KIND_CPU", "count": 1}],
        "version_policy": {"latest": {"num_versions": 1}},
        "parameters": {
            "cxr_serve_version": {"string_value": metadata.version},
            "onnx_sha256": {"string_value": metadata.onnx_sha256},
            "classes": {"string_value": ",".join(metadata.classes)},
            "output": {"string_value": metadata.output},
        },
    }
