# cxr-serve: `make run` brings the stack up, `make test` runs every test.
# Both call `make setup` first, which installs and builds whatever is missing.
SHELL := /bin/bash
PYTHON ?= python3.11
PROFILE ?= cpu
VENV := .venv
PY := $(VENV)/bin/python
# The venv is rebuilt when pyproject.toml changes (its hash names the stamp).
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-16)

.PHONY: setup run test lint test-packages bench bench-soak clean deploy-files

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

test: setup lint test-packages
	$(PY) -m pytest

# Debian packages the tests drive for real: Chromium and ChromeDriver for the web page (tests/gateway/ui),
# a CJK font for its zh screenshots, Orthanc with its DICOMweb plugin as the PACS (tests/gateway/pacs).
# Installed when missing and run as root (as CI is; Orthanc's own system service is left stopped);
# otherwise the tests that need them fail and print this command.
TEST_PACKAGES := chromium chromium-driver fonts-wqy-microhei orthanc orthanc-dicomweb
test-packages:
	@if ! dpkg -s $(TEST_PACKAGES) >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(TEST_PACKAGES) \
	    && { systemctl disable --now orthanc 2>/dev/null || true; }; \
	  else echo "make test-packages: as root, run: apt-get install -y $(TEST_PACKAGES)"; fi; \
	fi

# Performance targets, each the median of alternating rounds (under 15 min on 2 cores); see README "Performance".
bench: setup
	$(PY) -m scripts.bench

bench-soak: setup
	$(PY) -m scripts.soak --seconds 300

# Regenerate deploy/docker-compose*.yml and deploy/k8s/ from deploy/models.yaml.
deploy-files: $(STAMP)
	$(PY) -m scripts.launcher manifests

clean:
	rm -rf $(VENV) models logs
