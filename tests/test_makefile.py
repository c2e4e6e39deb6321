"""`make setup` per profile: what it would run (make -n), so a GPU server never gets the CPU build."""

import subprocess

from services.contract.paths import REPO_ROOT


def _dry_run(*args: str) -> str:
    # A stamp name no venv has: make prints the whole install recipe.
    done = subprocess.run(["make", "-n", "-B", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return done.stdout


def test_a_gpu_profile_installs_cuda_vllm_into_its_own_environment_and_nothing_of_the_cpu_build():
    recipe = _dry_run("run", "PROFILE=gpu")
    assert ".venv-gpu/bin/python -m pip install --quiet -r pylock.gpu.toml" in recipe  # tests/test_lock.py: its content
    assert ".venv-gpu/bin/python -m scripts.launcher run --profile gpu" in recipe
    assert "install_cpu_fixes" not in recipe and "modelbuild" not in recipe and "pylock.cpu" not in recipe
    assert "torch.version.cuda" in recipe  # a CPU torch that slipped in stops set-up


def test_the_cpu_profile_installs_from_its_lock_and_the_project_without_dependencies():
    recipe = _dry_run("setup")
    assert ".venv/bin/python -m pip install --quiet -r pylock.cpu.toml" in recipe
    assert ".venv/bin/python -m pip install --quiet --no-deps -e ." in recipe
    assert recipe.index("-r pylock.cpu.toml") < recipe.index("install_cpu_fixes") < recipe.index("modelbuild")


def test_make_run_installs_only_the_stack_and_make_test_adds_the_test_tools():
    run = _dry_run("run")
    assert "pylock.dev" not in run and "llama" not in run.lower()  # nothing it does not run
    assert ".venv/bin/python -m scripts.launcher run --profile cpu" in run
    test = _dry_run("test")
    assert "--no-cache-dir -r pylock.dev.toml" in test and "-DGGML_NATIVE=OFF" in test  # llama.cpp, portable
    assert test.index("-r pylock.dev.toml") < test.index("-m pytest")
