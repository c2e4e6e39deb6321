# The gateway: pure Python, no GPU. Installs the project as pyproject.toml pins it.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY services ./services
COPY gateway ./gateway
COPY scripts ./scripts
COPY deploy/model-cards ./deploy/model-cards
# The audit trail's folder, owned by the gateway's user: a new named volume copies this ownership.
RUN pip install . && useradd --uid 10001 --no-create-home cxr \
    && mkdir -p /var/lib/cxr-serve/audit && chown cxr /var/lib/cxr-serve/audit
USER cxr
EXPOSE 8080
# models/ (model cards, the classifier's metadata file) is mounted read-only at /app/models.
CMD ["python", "-m", "gateway", "serve"]
