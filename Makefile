# cxr-serve: `make run` brings the stack up, `make test` runs every test.
# Both call `make setup` first, which installs and builds whatever is missing.
SHELL := /bin/bash
PYTHON ?= python3.11
PROFILE ?= cpu
# ONNX Runtime sends telemetry to Microsoft unless told not to; set-up, tools and tests run it too.
export ORT_DISABLE_TELEMETRY := 1
# Each profile family has an environment of its own: a GPU server's holds vLLM's CUDA build and onnxruntime-gpu
# (`make setup PROFILE=gpu`), never the CPU build that the embedded default, the tests and the tools use.
# Each installs from its hashed lock file, pylock.<LOCK>.toml (`make lock`, scripts/lock.py, which names each
# environment's extras): the CPU venv holds what the stack runs and set-up builds its models with (`cpu`); the
# test tools (`dev`: the same and pytest, llama.cpp, ...) come with `make test` (and lint, bench,
# test-containers), never with `make run`.
ifneq (,$(findstring gpu,$(PROFILE)))
VENV := .venv-gpu
LOCK := gpu
else
VENV := .venv
LOCK := cpu
endif
PY := $(VENV)/bin/python
# The venv is rebuilt when pyproject.toml or a lock changes (their hash names the stamps: one for the stack, one
# for its tests).
HASH := $(shell cat pyproject.toml pylock.*.toml | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(HASH)
TEST_STAMP := $(VENV)/.installed-test-$(HASH)
# llama.cpp (the interoperability tests' second engine) is compiled from source, and ggml compiles for every
# feature the CPU announces (-march=native), which pip then caches for the next venv. A CPU that announces AMX
# the kernel does not grant crashes at the first token (a general protection fault in libggml-cpu.so, seen on
# these machines with `dmesg`), and a cached build may come from another machine: so a portable build, never
# cached, for x86-64-v3 (AVX2, FMA, F16C, BMI2), without AVX-512 or AMX.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON

.PHONY: docs docs-site lock setup setup-test run test test-fast lint test-packages test-peers test-containers bench bench-full bench-soak clean deploy-files

setup: $(STAMP)
ifeq ($(LOCK),gpu)
	@echo "$(VENV): vLLM (CUDA) and onnxruntime-gpu; weights come from your Hugging Face cache (docs/operators.md, GPU profile, step by step)"
else
	$(PY) -m scripts.modelbuild
endif

$(STAMP): pyproject.toml pylock.$(LOCK).toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r pylock.$(LOCK).toml
	$(PY) -m pip install --quiet --no-deps -e .
ifeq ($(LOCK),gpu)
	@# The lock names PyPI's CUDA torch; stop if a CPU one is found all the same.
	@$(PY) -c "import sys, torch; sys.exit(0 if torch.version.cuda else 'torch ' + torch.__version__ + ' has no CUDA: see pip config list')"
else
	$(PY) -m scripts.platform.install_cpu_fixes
endif
	@rm -f $(VENV)/.installed-* && touch $@

# The test tools, on top of the stack's environment (the CPU profile's: the tests run there).
setup-test: setup $(TEST_STAMP)
$(TEST_STAMP): $(STAMP) pylock.dev.toml
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip install --quiet --no-cache-dir -r pylock.dev.toml
	$(PY) -m scripts.platform.install_cpu_fixes
	@rm -f $(VENV)/.installed-test-* && touch $@

# ONLY=classifier,gateway runs a subset; LOG_DIR=... writes the services' logs elsewhere than logs/.
run: setup
	$(PY) -m scripts.launcher run --profile $(PROFILE) $(if $(ONLY),--only $(ONLY)) $(if $(LOG_DIR),--log-dir $(LOG_DIR))

lint: $(TEST_STAMP)  # ruff, and mypy --strict on gateway/ and services/ (pyproject.toml [tool.mypy])
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

test: setup-test lint test-packages test-peers
	$(PY) -m pytest

# The inner loop: every test that needs no vLLM or llama.cpp server (marker `model_servers`, tests/conftest.py).
test-fast: setup-test test-packages test-peers
	$(PY) -m pytest -m 'not containers and not model_servers'

# Debian packages, installed when missing and as root (as CI is); otherwise the command is printed.
define apt_ensure
	@if ! dpkg -s $(1) >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(1) $(2); \
	  else echo "as root, run: apt-get install -y $(1)"; fi; \
	fi
endef

# What the tests drive for real: Chromium and ChromeDriver for the web page (tests/gateway/ui), a CJK font for
# its zh screenshots, Orthanc with its DICOMweb plugin as the PACS (tests/bridge; its own system service
# is left stopped), nftables to see every packet the stack addresses outside itself (tests/deploy/test_topology.py),
# DCMTK (storescu, echoscu, dsrdump) as an independent DICOM peer of the bridge (tests/bridge), dicom3tools'
# dciodvfy as an independent validator of the verified SR (tests/bridge/pacs/test_verified.py), rsyslog with its
# TLS driver as the audit repository (tests/gateway/test_audit_repository.py; its system service left stopped),
# Prometheus for its promtool, which checks and unit-tests the agreement alert (tests/deploy/test_monitoring.py).
# Without them those tests fail and print the command.
TEST_PACKAGES := chromium chromium-driver fonts-wqy-microhei orthanc orthanc-dicomweb nftables dcmtk dicom3tools rsyslog rsyslog-gnutls prometheus
test-packages:
	$(call apt_ensure,$(TEST_PACKAGES),&& { systemctl disable --now orthanc rsyslog prometheus 2>/dev/null || true; })

# The OpenID Provider of the login tests: panva's oidc-provider from npm, as its lock file pins it.
test-peers: scripts/peers/oidc/node_modules/.package-lock.json
scripts/peers/oidc/node_modules/.package-lock.json: scripts/peers/oidc/package-lock.json
	npm ci --prefix scripts/peers/oidc --no-audit --no-fund --silent

# The cpu compose stack in real containers, end to end (docs/deployment.md, "Containers, tested end to end"): Debian's Docker engine (started
# by the test when none runs), debootstrap, which builds the base image from Debian packages (air-gapped), and
# iproute2 for the network namespace of the fresh-engine test (tests/deploy/test_fresh_engine.py).
CONTAINER_PACKAGES := docker.io debootstrap iproute2
test-containers: setup-test
	$(call apt_ensure,$(CONTAINER_PACKAGES))
	$(PY) -m pytest -m containers tests/deploy/test_fresh_engine.py tests/deploy/test_containers.py

# Performance targets, each the median of alternating rounds (under 15 min on 2 cores); see docs/performance.md:
# the stack's (pipeline, classifier, vLLM, capacity curve), then the gateway's own cost against a null upstream
# with its profile.
bench: setup-test
	$(PY) -m scripts.bench
	$(PY) -m scripts.bench_gateway_overhead --profile

# make bench, then what it leaves out (about 12 min more on 2 cores, each starting what it measures): STAT under
# routine load, open-loop capacity, and vLLM against transformers on the same cores (docs/performance.md).
bench-full: bench
	$(PY) -m scripts.bench_priority
	$(PY) -m scripts.bench_capacity
	$(PY) -m scripts.bench_vlm_baseline

bench-soak: setup-test
	$(PY) -m scripts.soak --seconds 300

# Regenerate docs/configuration.md from the services' settings classes.
docs: $(STAMP)
	$(PY) -m scripts.configref

# Rewrite the hashed lock files from pyproject.toml (make test fails while one is behind it).
lock:
	$(PY) -m scripts.lock

# Regenerate deploy/docker-compose*.yml and deploy/k8s/ from deploy/models.yaml.
# The docs as a site (site/index.html), with MkDocs' strict checks of every link and anchor.
docs-site: setup-test
	$(PY) -m mkdocs build --strict

deploy-files: $(STAMP)
	$(PY) -m scripts.launcher manifests

clean:
	rm -rf .venv .venv-gpu models logs
