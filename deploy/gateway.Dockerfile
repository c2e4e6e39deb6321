# The gateway: pure Python, no GPU, no ONNX Runtime (pyproject.toml's `gateway` extra and nothing else, as
# deploy/requirements/gateway.txt pins and hashes it; deploy/image-install.sh installs it and writes the SBOM).
# BASE_IMAGE and UID come from deploy/models.yaml (containers) through the compose file's build arguments.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ARG UID
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY services ./services
COPY gateway ./gateway
COPY deploy/model-cards ./deploy/model-cards
COPY deploy/image-install.sh deploy/requirements/gateway.txt deploy/requirements/sbom.txt /tmp/install/
# The audit trail's folder and its key's (apart), owned by the gateway's user: a new named volume copies this
# ownership. The key's folder is 0700: only the gateway's user reads the key.
RUN sh /tmp/install/image-install.sh /tmp/install gateway && useradd --uid "$UID" --no-create-home cxr \
    && mkdir -p /var/lib/cxr-serve/audit /var/lib/cxr-serve/audit-key \
    && chown "$UID" /var/lib/cxr-serve/audit /var/lib/cxr-serve/audit-key && chmod 0700 /var/lib/cxr-serve/audit-key
USER ${UID}
EXPOSE 8080
# models/ (model cards, the classifier's metadata file) is mounted read-only at /app/models.
CMD ["python", "-m", "gateway", "serve"]
