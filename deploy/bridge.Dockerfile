# The DICOM bridge (services/bridge): pure Python, no GPU, no ONNX Runtime, no vLLM (pyproject.toml's
# `bridge` extra and nothing else). BASE_IMAGE and UID come from deploy/models.yaml (containers) through the
# compose file's build arguments.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ARG UID
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY services ./services
# The spool and the state database's folder, owned by the bridge's user: a new named volume copies this ownership.
RUN pip install ".[bridge]" && useradd --uid "$UID" --no-create-home cxr \
    && mkdir -p /var/lib/cxr-serve/bridge && chown "$UID" /var/lib/cxr-serve/bridge
USER ${UID}
# 11112: DIMSE (C-STORE, C-ECHO); 8090: /health, /ready, /metrics
EXPOSE 11112 8090
CMD ["python", "-m", "services.bridge"]
