"""The bridge as a real process on a free loopback port, and DICOM files to push to it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from scripts.launcher.process import free_port
from scripts.peers.ris import RisPeer
from services.contract.paths import REPO_ROOT
from tests.conftest import SAMPLES
from tests.dicom_files import from_jpeg
from tests.pacs_server import Orthanc, started
from tests.waiting import wait_until

JPEG = (SAMPLES / "person1946_bacteria_4874.jpeg").read_bytes()
INSTALL = "make test-packages (as root; it installs Debian's dcmtk)"


@dataclass
class Bridge:
    state_dir: Path
    log: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Bridge:
        env = {
            **os.environ,
            **self.env,
            "CXR_BRIDGE_PORT": str(self.port),
            "CXR_BRIDGE_HTTP_PORT": str(self.http_port),
            "CXR_BRIDGE_STATE_DIR": str(self.state_dir),
        }
        before = self._ready_lines()
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.bridge"], cwd=REPO_ROOT, env=env, stdout=out, stderr=out
            )
        wait_until(lambda: self._ready_lines() > before or self.process.poll() is not None, 30, "the bridge's ready line")
        assert self.process.poll() is None, self.log.read_text()[-2000:]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def _ready_lines(self) -> int:
        return self.log.read_text().count('"msg": "ready"') if self.log.exists() else 0

    def lines(self, message: str) -> list[dict]:
        return [entry for entry in map(json.loads, self.log.read_text().splitlines()) if entry.get("msg") == message]

    def stop(self, signum: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        code = self.process.wait(timeout=30)
        self.process = None
        return code

    def rows(self) -> list[tuple[str, str, int, str]]:
        """(SOP Instance UID, state, attempts, detail) of every instance, read from the state database itself."""
        with sqlite3.connect(f"file:{self.state_dir / 'state.sqlite3'}?mode=ro", uri=True) as db:
            return db.execute("SELECT sop_instance_uid, state, attempts, detail FROM instances ORDER BY received_at").fetchall()

    def priorities(self) -> list[tuple[str, str]]:
        """(SOP Instance UID, priority) of every instance, from the state database."""
        with sqlite3.connect(f"file:{self.state_dir / 'state.sqlite3'}?mode=ro", uri=True) as db:
            return db.execute("SELECT sop_instance_uid, priority FROM instances ORDER BY received_at").fetchall()

    def deliveries(self) -> list[tuple[str, str, str, int, str]]:
        """(SOP Instance UID, destination, state, attempts, detail) of every delivery, from the state database."""
        with sqlite3.connect(f"file:{self.state_dir / 'state.sqlite3'}?mode=ro", uri=True) as db:
            columns = "sop_instance_uid, destination, state, attempts, detail"
            return db.execute(f"SELECT {columns} FROM deliveries ORDER BY sop_instance_uid, destination").fetchall()

    def result(self, sop: str) -> str | None:
        with sqlite3.connect(f"file:{self.state_dir / 'state.sqlite3'}?mode=ro", uri=True) as db:
            (result,) = db.execute("SELECT result FROM instances WHERE sop_instance_uid = ?", (sop,)).fetchone()
        return result


@pytest.fixture
def start_bridge(tmp_path) -> Iterator:
    started: list[Bridge] = []

    def start(state: str = "state", **env: str) -> Bridge:
        settings = {"CXR_BRIDGE_GATEWAY_URL": f"http://127.0.0.1:{free_port()}", **env}  # no gateway unless given
        bridge = Bridge(tmp_path / state, tmp_path / "bridge.log", settings).start()
        started.append(bridge)
        return bridge

    yield start
    for bridge in started:
        if bridge.process is not None:
            bridge.stop(signal.SIGKILL)


@pytest.fixture(scope="session", autouse=True)
def dcmtk() -> None:
    for tool in ("storescu", "echoscu", "dsrdump"):
        assert subprocess.run(["which", tool], capture_output=True).returncode == 0, f"{tool} is missing: {INSTALL}"


def x_ray(folder: Path, name: str = "dx", **header: str) -> Path:
    """A chest DX (or, with `modality=` / `body_part=`, what the policy refuses) as a Part 10 file."""
    path = folder / f"{name}.dcm"
    path.write_bytes(from_jpeg(JPEG, "mono2-8bit", **header))
    return path


@pytest.fixture
def ris() -> Iterator[RisPeer]:
    peer = RisPeer().start()
    yield peer
    with contextlib.suppress(AssertionError):  # a test may have stopped it
        peer.stop()


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory) -> Iterator[Orthanc]:
    pacs = started(tmp_path_factory.mktemp("orthanc"))
    yield pacs
    pacs.stop()
