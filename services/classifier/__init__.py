"""ONNX Runtime pneumonia classifier worker (Open Inference Protocol, dynamic batching)."""

import os

# ONNX Runtime (1.29 and later) sends telemetry to Microsoft from Linux too, unless this is set before it
# starts. The worker must never call out however it is started; deployments set it too (NO_EGRESS_ENV).
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
