"""The test PACS (scripts/peers/orthanc.py), started for a test or a session; missing, the test fails naming the install."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.peers.orthanc import INSTALL, PASSWORD, USER, Orthanc, installed

__all__ = ["PASSWORD", "USER", "Orthanc", "started"]


def started(folder: Path, **config: object) -> Orthanc:
    if not installed():
        pytest.fail(f"the PACS tests need Debian's Orthanc and its DICOMweb plugin; install them with: {INSTALL}")
    pacs = Orthanc(folder, **config)
    pacs.start()
    return pacs
