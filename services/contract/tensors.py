"""Tensors on the Open Inference Protocol's REST API: JSON `data` or the binary tensor data extension.

The binary form (Triton's `binary_tensor_data` extension, which `tritonclient`
uses by default) sends a JSON header followed by the raw bytes of every tensor
that names its `parameters.binary_data_size`, in the order the tensors appear;
the HTTP header `Inference-Header-Content-Length` gives the JSON header's
length. One 150x150x3 FP32 tensor is 270 kB that way, against about 1 MB of
JSON numbers that must be printed and parsed again. Both directions are here,
for FP32 only (the one datatype the classifier has): the worker reads requests
and writes responses with it, the gateway the other way round.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY_MEDIA_TYPE = "application/octet-stream"
FP32 = np.dtype("<f4")  # the protocol's binary tensors are little-endian, row-major


class TensorFormatError(ValueError):
    """A message whose tensors cannot be read: a client's fault, answered 400."""


def split(body: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    """The JSON header and the binary part of a message; all JSON when the header length is absent."""
    if header_length is None:
        return body, memoryview(b"")
    if not header_length.isdigit() or not 0 < int(header_length) <= len(body):
        raise TensorFormatError(f"{HEADER_LENGTH} must be a length within the body's {len(body)} bytes")
    length = int(header_length)
    return body[:length], memoryview(body)[length:]


def read(entries: Sequence[Mapping[str, Any]], binary: memoryview) -> dict[str, np.ndarray]:
    """Every tensor of a message's `inputs` or `outputs`, by name, as FP32 arrays of their declared shape."""
    tensors: dict[str, np.ndarray] = {}
    offset = 0
    for entry in entries:
        name, shape = entry["name"], [int(n) for n in entry["shape"]]
        size = (entry.get("parameters") or {}).get("binary_data_size")
        if size is None:
            values = np.asarray(entry.get("data") if entry.get("data") is not None else [], dtype=FP32)
        else:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise TensorFormatError(f"tensor {name!r}: binary_data_size {size!r} exceeds the binary part")
            values = _fp32_bytes(name, entry.get("datatype"), binary[offset : offset + size])
            offset += size
        if values.size != math.prod(shape):
            raise TensorFormatError(f"tensor {name!r}: shape {shape} needs {math.prod(shape)} values, got {values.size}")
        tensors[name] = values.reshape(shape)
    if offset != len(binary):
        raise TensorFormatError(f"{len(binary) - offset} bytes after the last binary tensor")
    return tensors


def _fp32_bytes(name: str, datatype: object, raw: memoryview) -> np.ndarray:
    if datatype != "FP32":
        raise TensorFormatError(f"tensor {name!r} must be FP32, got {datatype}")
    if len(raw) % FP32.itemsize:
        raise TensorFormatError(f"tensor {name!r}: {len(raw)} bytes is not a whole number of FP32 values")
    return np.frombuffer(raw, dtype=FP32)


def entry(name: str, tensor: np.ndarray, *, binary: bool) -> dict[str, Any]:
    """The JSON description of one FP32 tensor; with `binary` its values go after the header."""
    described: dict[str, Any] = {"name": name, "shape": list(tensor.shape), "datatype": "FP32"}
    if binary:
        described["parameters"] = {"binary_data_size": tensor.size * FP32.itemsize}
    else:
        described["data"] = np.asarray(tensor, dtype=FP32).ravel().tolist()
    return described


def message(header: Mapping[str, Any], binary_tensors: Sequence[np.ndarray]) -> tuple[bytes, dict[str, str]]:
    """A whole message and its HTTP headers: JSON alone, or JSON then the binary tensors in order."""
    head = json.dumps(header, separators=(",", ":")).encode()
    if not binary_tensors:
        return head, {"Content-Type": "application/json"}
    raw = b"".join(np.ascontiguousarray(tensor, dtype=FP32).tobytes() for tensor in binary_tensors)
    return head + raw, {"Content-Type": BINARY_MEDIA_TYPE, HEADER_LENGTH: str(len(head))}
