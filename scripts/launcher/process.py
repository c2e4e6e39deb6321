"""`python -m scripts.launcher run` as a child process, for the tests and the benchmarks.

They start the stack exactly as `make run` does, on free ports passed as the
CXR_* overrides, and wait for its READY line.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from services.contract.paths import REPO_ROOT


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_overrides() -> dict[str, str]:
    ports = {f"CXR_{name}_PORT": str(free_port()) for name in ("GATEWAY", "REPORT", "FRACTURE", "CLASSIFIER", "BRIDGE")}
    return {**ports, "CXR_BRIDGE_HTTP_PORT": str(free_port())}


class LauncherProcess:
    """The launcher as a child, with its output lines collected."""

    def __init__(self, env: dict[str, str], log_dir: Path, only: str = "", via_make: bool = False) -> None:
        if via_make:  # exactly what a user types, GNU make's own signal handling included
            argv = ["make", "--no-print-directory", "run", f"LOG_DIR={log_dir}", f"ONLY={only}"]
        else:
            argv = [sys.executable, "-m", "scripts.launcher", "run", "--log-dir", str(log_dir)]
            argv += ["--only", only] if only else []
        self.process = subprocess.Popen(
            argv,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO_ROOT,
            start_new_session=True,  # a process group of its own, as under a process manager or a terminal
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for_line(self, prefix: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            match = next((line for line in self.lines if line.startswith(prefix)), None)
            if match:
                return match
            if self.process.poll() is not None:
                self._reader.join(timeout=5)
                raise RuntimeError(f"launcher exited ({self.process.returncode}):\n" + "\n".join(self.lines[-40:]))
            time.sleep(0.5)
        raise TimeoutError(f"no line starting {prefix!r} within {timeout_s} s:\n" + "\n".join(self.lines[-40:]))

    def stop(self, timeout_s: float = 60, sig: signal.Signals = signal.SIGTERM, whole_group: bool = False) -> int:
        """Signal the launcher (or its whole process group, as a terminal or `timeout` does) and wait for it."""
        if self.process.poll() is None:
            if whole_group:
                os.killpg(self.process.pid, sig)
            else:
                self.process.send_signal(sig)
        code = self.process.wait(timeout=timeout_s)
        self._reader.join(timeout=5)
        return code
