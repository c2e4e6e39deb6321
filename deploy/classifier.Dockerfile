# The ONNX Runtime classifier worker. RUNTIME=gpu installs onnxruntime-gpu with its CUDA/cuDNN wheels
# (pyproject's `classifier-gpu` extra; the host needs the NVIDIA driver and container toolkit), RUNTIME=cpu
# onnxruntime (`classifier`), each as deploy/requirements/classifier-$RUNTIME.txt pins and hashes it
# (deploy/image-install.sh installs it and writes the SBOM). BASE_IMAGE and UID come from deploy/models.yaml
# through the compose file.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ARG UID
ARG RUNTIME
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY services ./services
COPY deploy/image-install.sh deploy/requirements/classifier-${RUNTIME}.txt deploy/requirements/sbom.txt /tmp/install/
RUN sh /tmp/install/image-install.sh /tmp/install "classifier-$RUNTIME" \
 && useradd --uid "$UID" --no-create-home cxr
USER ${UID}
EXPOSE 8001
# The worker reports the execution provider it actually got (CUDA, or CPU after a fallback).
CMD ["python", "-m", "services.classifier"]
