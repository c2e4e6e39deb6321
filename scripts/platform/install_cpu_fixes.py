"""Post-install fixes for vLLM's CPU build, applied by `make setup`.

Only when torch is a CPU build: PyPI's torchaudio and torchcodec are CUDA
builds whose extensions cannot load (vLLM copes with their absence), and
torchvision needs the lazy op-schema hook in torchvision_fix.py.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

HOOK_MODULE = "_cxr_torchvision_fix"
CUDA_ONLY_PACKAGES = ("torchaudio", "torchcodec")  # PyPI's builds, whose extensions a CPU torch cannot load


def torch_is_cpu_build() -> bool:
    return importlib.metadata.version("torch").endswith("+cpu")


def remove_cuda_only_packages() -> None:
    installed = {dist.metadata["Name"].lower() for dist in importlib.metadata.distributions()}
    present = [name for name in CUDA_ONLY_PACKAGES if name in installed]
    if present:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", *present], check=True)


def install_torchvision_hook() -> None:
    site_packages = Path(sysconfig.get_paths()["purelib"])
    shutil.copyfile(Path(__file__).with_name("torchvision_fix.py"), site_packages / f"{HOOK_MODULE}.py")
    (site_packages / f"{HOOK_MODULE}.pth").write_text(f"import {HOOK_MODULE}; {HOOK_MODULE}.install()\n")


def main() -> None:
    if not torch_is_cpu_build():
        print("torch is not a CPU build: no CPU fixes applied")
        return
    remove_cuda_only_packages()
    install_torchvision_hook()
    print("CPU fixes applied: torchaudio/torchcodec removed, torchvision hook installed")


if __name__ == "__main__":
    main()
