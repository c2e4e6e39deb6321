# The DICOM bridge (services/bridge): pure Python, no GPU, no ONNX Runtime, no vLLM (pyproject.toml's
# `bridge` extra and nothing else, as deploy/requirements/bridge.txt pins and hashes it; deploy/image-install.sh
# installs it and writes the SBOM). BASE_IMAGE and UID come from deploy/models.yaml (containers) through the
# compose file's build arguments.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ARG UID
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY services ./services
COPY deploy/image-install.sh deploy/requirements/bridge.txt deploy/requirements/sbom.txt /tmp/install/
# The spool and the state database's folder, owned by the bridge's user: a new named volume copies this ownership.
RUN sh /tmp/install/image-install.sh /tmp/install bridge && useradd --uid "$UID" --no-create-home cxr \
    && mkdir -p /var/lib/cxr-serve/bridge && chown "$UID" /var/lib/cxr-serve/bridge
USER ${UID}
# 11112: DIMSE (C-STORE, C-ECHO); 8090: /health, /ready, /metrics
EXPOSE 11112 8090
CMD ["python", "-m", "services.bridge"]
