"""Hashed lock files, one per environment, made from pyproject.toml by one command:

    python -m scripts.lock            # (make lock) rewrite every pylock.<environment>.toml at the root
    python -m scripts.lock --check    # exit 1 naming each lock that pyproject.toml no longer matches
    python -m scripts.lock --upgrade  # the newest versions pyproject.toml allows (otherwise locked ones are kept)

    pylock.cpu.toml   what `make setup` installs: the stack on the CPU profile and set-up's model building
    pylock.dev.toml   the same and the test tools (`make test`, lint, bench)
    pylock.gpu.toml   a GPU server's environment (`make setup PROFILE=gpu`)

pip resolves each (`pip lock`, PEP 751) for this platform, Linux x86-64 and CPython 3.11, the platform of every
profile, and records each file's URL and sha256; `pip install -r` verifies them. The project itself is left
out: set-up installs it editable, without dependencies. Each lock records the hash of the dependency tables
it was made from (`[tool.cxr-serve] inputs`), so a pin changed in pyproject.toml fails `make test` until
`make lock` is run, which keeps every version a lock holds except those pyproject.toml pins, so a lock moves
only where pyproject.toml moved. The CPU build of torch is not on PyPI: its URL is that of the local wheel
folder pip is configured with (`pip config get global.find-links`), where set-up finds it; the GPU lock is
resolved without that folder, so it can never take the CPU wheel for vLLM's CUDA one.

Each image installs from a hashed requirements file of its own, deploy/requirements/<image>.txt, made by the same
command: the image's extras resolved within its environment's lock (the same versions, the same files, so the
same hashes), with the build backend the image builds the project with (`[build-system] requires`). An image's
pip is its base image's (Debian's 23.0 in the air-gapped build), which reads no pylock but installs a
requirements file with `--require-hashes`, and a pylock's URLs name this machine's wheel folders, which a build
does not see: the hashes travel, the URLs do not. `sbom.txt` is the tool each image writes its CycloneDX SBOM
with at build time (deploy/*.Dockerfile), installed beside the image's packages and removed after.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from services.contract.paths import REPO_ROOT

# The extras of each environment; the Makefile installs pylock.<name>.toml.
ENVIRONMENTS = {
    "cpu": "cpu,classifier,gateway,bridge,build",
    "dev": "cpu,classifier,gateway,bridge,build,dev",
    "gpu": "gpu",
}
# Each image's requirements file: (its extras, the environment whose lock pins them); deploy/*.Dockerfile install it.
IMAGES = {
    "gateway": ("gateway", "cpu"),
    "bridge": ("bridge", "cpu"),
    "classifier-cpu": ("classifier", "cpu"),
    "classifier-gpu": ("classifier-gpu", "gpu"),
    "vllm-cpu": ("cpu", "cpu"),
    "sbom": ("sbom", "cpu"),
}
REQUIREMENTS_DIR = REPO_ROOT / "deploy" / "requirements"
PROJECT = "cxr-serve"


def lock_path(environment: str) -> Path:
    return REPO_ROOT / f"pylock.{environment}.toml"


def _reached(project: dict[str, Any], extras: str) -> dict[str, list[str]]:
    """The extras an environment installs, with those they name in turn (`cxr-serve[fhir]`)."""
    tables: dict[str, list[str]] = project["optional-dependencies"]
    reached: dict[str, list[str]] = {}
    pending = extras.split(",")
    while pending:
        extra = pending.pop()
        if extra not in reached:
            reached[extra] = tables[extra]
            named = (r.split("[", 1)[1].rstrip("]") for r in tables[extra] if r.startswith(f"{PROJECT}["))
            pending.extend(e for group in named for e in group.split(","))
    return reached


def inputs(environment: str) -> str:
    """The hash of what a lock is made from: the project's dependencies and the extras the environment reaches
    (an extra it does not install, such as `sbom`, changes no lock)."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    made_from = {
        "requires-python": project["requires-python"],
        "dependencies": project["dependencies"],
        "optional-dependencies": _reached(project, ENVIRONMENTS[environment]),
    }
    return hashlib.sha256(json.dumps(made_from, sort_keys=True).encode()).hexdigest()


def recorded_inputs(path: Path) -> str | None:
    if not path.exists():
        return None
    tool: dict[str, Any] = tomllib.loads(path.read_text()).get("tool", {})
    found = tool.get(PROJECT, {}).get("inputs")
    return str(found) if found is not None else None


def requirements_path(image: str) -> Path:
    return REQUIREMENTS_DIR / f"{image}.txt"


def build_requires() -> list[str]:
    return list(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["build-system"]["requires"])


def image_inputs(image: str) -> str:
    """An image's file is made from its extras, the build backend, and its environment's lock as it is now."""
    extras, environment = IMAGES[image]
    made_from = {"extras": extras, "build-requires": build_requires(), "lock": lock_path(environment).read_text()}
    return hashlib.sha256(json.dumps(made_from, sort_keys=True).encode()).hexdigest()


def recorded_image_inputs(path: Path) -> str | None:
    if not path.exists():
        return None
    found = next((line for line in path.read_text().splitlines() if line.startswith("# inputs: ")), None)
    return found.removeprefix("# inputs: ") if found else None


def locked_packages(path: Path) -> list[dict[str, Any]]:
    return [package for package in tomllib.loads(path.read_text())["packages"] if package["name"] != PROJECT]


def _without_project(text: str) -> str:
    """pip's lock without the project's own entry (a `[[packages]]` block naming it)."""
    head, *blocks = text.split("\n[[packages]]\n")
    kept = [block for block in blocks if not block.startswith(f'name = "{PROJECT}"\n')]
    return "\n[[packages]]\n".join([head, *kept]).rstrip("\n") + "\n"


def _pip(environment: str) -> list[str]:
    """pip as configured here; for the GPU lock, without its configuration (`--isolated`: no local wheel folder,
    so PyPI's CUDA torch, never the local +cpu wheel, which satisfies vLLM's `torch==` pin too), keeping its CA."""
    pip = [sys.executable, "-m", "pip"]
    if environment != "gpu":
        return pip
    cert = os.environ.get("PIP_CERT")
    return [*pip, "--isolated", *(["--cert", cert] if cert else [])]


def _direct() -> set[str]:
    """The packages pyproject.toml names itself: their versions come from it, never from a kept lock."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"], *(r for rs in project["optional-dependencies"].values() for r in rs)]
    return {canonicalize_name(re.split(r"[\[=<>!~; ]", requirement, maxsplit=1)[0]) for requirement in requirements}


def kept_pins(environment: str) -> list[str]:
    """What `make lock` keeps: every version the environment's lock holds, less what pyproject.toml pins, so that
    a lock moves only where pyproject.toml moved (`--upgrade` keeps none and takes the newest that fit). Each lock
    keeps its own: the test tools' cannot always hold the stack's versions (tritonclient's grpc extra needs a
    protobuf below the one the stack's lock holds)."""
    path, direct = lock_path(environment), _direct()
    found = locked_packages(path) if path.exists() else []
    return sorted(f"{p['name']}=={p['version']}" for p in found if canonicalize_name(p["name"]) not in direct)


@contextmanager
def _constraints(pins: list[str]) -> Iterator[str]:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", prefix="constraints-") as constraints:
        constraints.write("".join(f"{pin}\n" for pin in pins))
        constraints.flush()
        yield constraints.name


def write(environment: str, upgrade: bool = False) -> Path:
    path = lock_path(environment)  # where pip writes it: a lock names the project by its path from the lock's folder
    with _constraints([] if upgrade else kept_pins(environment)) as constraints:
        command = [*_pip(environment), "lock", "--quiet", "-c", constraints, "-o", path.name, f".[{ENVIRONMENTS[environment]}]"]
        subprocess.run(command, cwd=REPO_ROOT, check=True)
    text = _without_project(path.read_text())
    notice = f"# Generated by `make lock` (scripts/lock.py) from pyproject.toml: environment {environment!r}.\n"
    path.write_text(notice + text + f'\n[tool.{PROJECT}]\nenvironment = "{environment}"\ninputs = "{inputs(environment)}"\n')
    return path


def _requirement(package: dict[str, Any]) -> str:
    files = [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else [])]
    hashes = "".join(f" \\\n    --hash=sha256:{file['hashes']['sha256']}" for file in files)
    return f"{package['name']}=={package['version']}{hashes}"


def write_requirements(image: str) -> Path:
    """pip lock of the image's extras, constrained to its environment's versions, as a hashed requirements file."""
    extras, environment = IMAGES[image]
    pins = [f"{p['name']}=={p['version']}" for p in locked_packages(lock_path(environment))]
    # pip writes a lock only where the project's folder is below it (it names the project by its path from there).
    locked = REPO_ROOT / f"pylock.making-{image}.toml"
    with _constraints(pins) as constraints:
        command = [*_pip(environment), "lock", "--quiet", "-c", constraints, "-o", locked.name]
        try:
            subprocess.run([*command, f".[{extras}]", *build_requires()], cwd=REPO_ROOT, check=True)
            packages = locked_packages(locked)
        finally:
            locked.unlink(missing_ok=True)
    head = (
        f"# Generated by `make lock` (scripts/lock.py): the {image} image's packages as {lock_path(environment).name}\n"
        "# pins them, and the build backend; `pip install --require-hashes -r` (deploy/*.Dockerfile).\n"
        f"# inputs: {image_inputs(image)}\n"
    )
    path = requirements_path(image)
    path.parent.mkdir(exist_ok=True)
    path.write_text(head + "".join(_requirement(package) + "\n" for package in packages))
    return path


def stale() -> list[str]:
    """The lock files and image requirement files that pyproject.toml (or their lock) no longer matches."""
    locks = [lock_path(name).name for name in ENVIRONMENTS if recorded_inputs(lock_path(name)) != inputs(name)]
    images = [image for image in IMAGES if recorded_image_inputs(requirements_path(image)) != image_inputs(image)]
    return [*locks, *(str(requirements_path(image).relative_to(REPO_ROOT)) for image in images)]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.lock", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a lock does not match pyproject.toml")
    parser.add_argument("--upgrade", action="store_true", help="keep no locked version: the newest that pyproject.toml allows")
    parser.add_argument("environments", nargs="*", help=f"of {', '.join(ENVIRONMENTS)}; default: every one")
    args = parser.parse_args()
    unknown = sorted(set(args.environments) - set(ENVIRONMENTS))
    if unknown:
        parser.error(f"no environment {', '.join(unknown)}")
    if args.check:
        behind = stale()
        for name in behind:
            print(f"{name} does not match pyproject.toml: run `make lock`", file=sys.stderr)
        return 1 if behind else 0
    chosen = args.environments or list(ENVIRONMENTS)
    for name in chosen:
        print(f"wrote {write(name, args.upgrade).relative_to(REPO_ROOT)}")
    for image in (image for image, (_, environment) in IMAGES.items() if environment in chosen):
        print(f"wrote {write_requirements(image).relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
