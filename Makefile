# cxr-serve: `make run` brings the stack up, `make test` runs every test.
# Both call `make setup` first, which installs and builds whatever is missing.
SHELL := /bin/bash
PYTHON ?= python3.11
PROFILE ?= cpu
VENV := .venv
PY := $(VENV)/bin/python
# The venv is rebuilt when pyproject.toml changes (its hash names the stamp).
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-16)

.PHONY: setup run test lint bench bench-soak clean deploy-files

setup: $(STAMP)
	$(PY) -m scripts.modelbuild

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[cpu,build,dev]'
	$(PY) -m scripts.platform.install_cpu_fixes
	@rm -f $(VENV)/.installed-* && touch $@

run: setup
	$(PY) -m scripts.launcher run --profile $(PROFILE)

lint: $(STAMP)  # ruff, and mypy --strict on gateway/ and services/ (pyproject.toml [tool.mypy])
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

test: setup lint
	$(PY) -m pytest

# Performance targets, measured side by side (~10 min on 2 cores); see README "Performance".
bench: setup
	$(PY) -m scripts.bench

bench-soak: setup
	$(PY) -m scripts.bench --soak 300

# Regenerate deploy/docker-compose*.yml and deploy/k8s/ from deploy/models.yaml.
deploy-files: $(STAMP)
	$(PY) -m scripts.launcher manifests

clean:
	rm -rf $(VENV) models logs
