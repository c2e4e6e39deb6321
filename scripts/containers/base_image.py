"""The base image built from Debian packages: the air-gapped hospital build (docs/deployment.md, "The air-gapped build").

Where no image registry is reachable, `python:3.11-slim` cannot be pulled; Debian's own packages, from the
mirror this machine's apt already uses, make an equivalent: debootstrap's minimal bookworm with Python 3.11
and pip, imported as an image. It carries this machine's CA bundle, so that pip behind a TLS-inspecting proxy
works inside a build as it does here. Nothing is fetched from outside the site's mirrors; wheels PyPI lacks
come from the site's own mirror at build time (scripts/containers/wheel_mirror.py).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from scripts.containers.engine import docker

TAG = "cxr-serve/base:bookworm-python3.11"
SUITE = "bookworm"
PACKAGES = ("python3.11", "python3-pip", "ca-certificates")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
DEBOOTSTRAP_TIMEOUT_S = 600


def apt_mirror() -> str:
    """The Debian mirror apt uses here (deb822 sources or sources.list), so the build reaches what apt reaches."""
    for sources in [*Path("/etc/apt/sources.list.d").glob("*.sources"), Path("/etc/apt/sources.list")]:
        if sources.exists():
            found = re.search(r"(?:^URIs:\s*|^deb\s+(?:\[[^\]]*\]\s+)?)(\S+/debian)\s", sources.read_text(), re.MULTILINE)
            if found:
                return found.group(1)
    return DEFAULT_MIRROR


def _configure(rootfs: Path) -> None:
    """`python`/`pip` where python:3.11-slim has them; pip may install system-wide (an image is its own venv)."""
    for name, target in (("python", "/usr/bin/python3"), ("pip", "/usr/bin/pip3")):
        (rootfs / "usr/local/bin" / name).symlink_to(target)
    (rootfs / "usr/lib/python3.11/EXTERNALLY-MANAGED").unlink(missing_ok=True)
    shutil.copyfile(CA_BUNDLE, rootfs / CA_BUNDLE.relative_to("/"))
    (rootfs / "etc/pip.conf").write_text(f"[global]\ncert = {CA_BUNDLE}\n")


def build() -> str:
    """Builds the image (about a minute) unless it exists already; returns its tag."""
    if docker("image", "inspect", TAG, check=False).returncode == 0:
        return TAG
    with tempfile.TemporaryDirectory(prefix="cxr-base-") as scratch:
        rootfs = Path(scratch) / "rootfs"
        subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(rootfs), apt_mirror()],
            check=True,
            timeout=DEBOOTSTRAP_TIMEOUT_S,
        )
        _configure(rootfs)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            ["docker", "import", "--change", "ENV LANG=C.UTF-8", "-", TAG], stdin=tar.stdout, check=True, capture_output=True
        )
        if tar.wait() != 0:
            raise RuntimeError("tar of the Debian root file system failed")
    return TAG
