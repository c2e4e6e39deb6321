# cxr-serve: `make run` brings the stack up, `make test` runs every test.
# Both call `make setup` first, which installs and builds whatever is missing.
SHELL := /bin/bash
PYTHON ?= python3.11
PROFILE ?= cpu
VENV := .venv
PY := $(VENV)/bin/python
# The venv is rebuilt when pyproject.toml changes (its hash names the stamp).
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-16)

.PHONY: setup run test lint browser bench bench-soak clean deploy-files

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

test: setup lint browser
	$(PY) -m pytest

# Debian's Chromium and ChromeDriver for the web page's tests (tests/gateway/ui), and a CJK font
# for its zh screenshots. Installed when missing and run as root (as CI is); otherwise the tests
# fail and print this command.
BROWSER_PACKAGES := chromium chromium-driver fonts-wqy-microhei
browser:
	@if ! dpkg -s $(BROWSER_PACKAGES) >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(BROWSER_PACKAGES); \
	  else echo "make browser: as root, run: apt-get install -y $(BROWSER_PACKAGES)"; fi; \
	fi

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
