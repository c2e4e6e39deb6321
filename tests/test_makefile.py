"""`make setup` per profile: what it would run (make -n), so a GPU server never gets the CPU build."""

import subprocess

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


def test_the_cpu_profile_finds_the_cpu_torch_locally_or_on_pytorchs_index():
    recipe = _dry_run("setup")
    assert "'.[cpu,classifier,build,dev]'" in recipe
    assert "--dry-run --no-deps 'torch==" in recipe
    assert f"--extra-index-url {manifests.TORCH_CPU_INDEX}" in recipe  # the same index the vllm-cpu image uses
