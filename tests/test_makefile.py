"""`make setup` per profile: what it would run (make -n), so a GPU server never gets the CPU build."""

import json
import subprocess
import sys

from scripts.launcher import manifests
from services.contract.paths import REPO_ROOT


def _dry_run(*args: str) -> str:
    # A stamp name no venv has: make prints the whole install recipe.
    done = subprocess.run(["make", "-n", "-B", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return done.stdout


def test_a_gpu_profile_installs_cuda_vllm_into_its_own_environment_and_nothing_of_the_cpu_build():
    recipe = _dry_run("run", "PROFILE=gpu")
    assert ".venv-gpu/bin/python -m pip install --quiet -e '.[gpu]'" in recipe
    assert ".venv-gpu/bin/python -m scripts.launcher run --profile gpu" in recipe
    assert "install_cpu_fixes" not in recipe and "modelbuild" not in recipe and "[cpu" not in recipe
    assert "torch.version.cuda" in recipe  # a CPU torch that slipped in stops set-up


def test_the_gpu_environment_resolves_with_vllms_cuda_build(tmp_path):
    """pip resolves the `gpu` extra with every pin of the project, from the packages' metadata; nothing installed."""
    report = tmp_path / "report.json"
    pip = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report)]
    subprocess.run([*pip, f"{REPO_ROOT}[gpu]"], check=True, timeout=600, capture_output=True)
    installed = {
        item["metadata"]["name"].lower(): item["metadata"]["version"] for item in json.loads(report.read_text())["install"]
    }
    assert installed["vllm"] == "0.32.0" and installed["onnxruntime-gpu"] == "1.31.1"
    assert "vllm-cpu" not in installed and "onnxruntime" not in installed  # never both runtimes in one environment


def test_the_cpu_profile_finds_the_cpu_torch_locally_or_on_pytorchs_index():
    recipe = _dry_run("setup")
    assert "'.[cpu,classifier,gateway,bridge,build]'" in recipe
    assert "--dry-run --no-deps 'torch==" in recipe
    assert f"--extra-index-url {manifests.TORCH_CPU_INDEX}" in recipe  # the same index the vllm-cpu image uses


def test_make_run_installs_only_the_stack_and_make_test_adds_the_test_tools():
    run = _dry_run("run")
    assert "[dev]" not in run and ",dev" not in run and "llama-cpp-python" not in run  # nothing it does not run
    assert ".venv/bin/python -m scripts.launcher run --profile cpu" in run
    test = _dry_run("test")
    assert ".venv/bin/python -m pip install --quiet -e '.[dev]'" in test and "'llama-cpp-python==" in test
    assert test.index("-e '.[dev]'") < test.index("-m pytest")
