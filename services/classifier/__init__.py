"""ONNX Runtime pneumonia classifier worker (Open Inference Protocol, dynamic batching)."""
