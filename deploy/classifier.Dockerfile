# The ONNX Runtime classifier worker. RUNTIME=gpu (default) swaps onnxruntime for
# onnxruntime-gpu with its CUDA/cuDNN wheels (pyproject's `gpu` extra); the host
# needs the NVIDIA driver and container toolkit. RUNTIME=cpu keeps onnxruntime.
FROM python:3.11-slim
ARG RUNTIME=gpu
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY services ./services
COPY gateway ./gateway
COPY scripts ./scripts
RUN pip install . \
 && if [ "$RUNTIME" = "gpu" ]; then \
      pip install ".[gpu]" && pip uninstall -y onnxruntime \
      && pip install --force-reinstall --no-deps "onnxruntime-gpu==1.31.1"; fi \
 && useradd --uid 10001 --no-create-home cxr
USER cxr
EXPOSE 8001
# The worker reports the execution provider it actually got (CUDA, or CPU after a fallback).
CMD ["python", "-m", "services.classifier"]
