"""A real PACS: Debian's Orthanc (with its DICOMweb plugin) as a child process on loopback, configured by the caller.

Its output goes to orthanc-output.txt, not a *.log file: the PACS holds patient identifiers by design, and
the identifier tests grep the logs of cxr-serve's own services (every *.log under the session's folder).
Used by the tests (tests/pacs_server.py) and the bridge's latency benchmark (scripts/bench_bridge.py).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
from dicomweb_client.api import DICOMwebClient
from dicomweb_client.session_utils import create_session_from_user_pass

from scripts.launcher.process import free_port

ORTHANC = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
INSTALL = "make test-packages (as root; it runs apt-get install -y orthanc orthanc-dicomweb)"
USER, PASSWORD = "cxr", "pacs-test-password"


def installed() -> bool:
    return ORTHANC.exists() and DICOMWEB_PLUGIN.exists()


class Orthanc:
    """Orthanc as a child process; stop() and start() keep its storage, as a PACS restart would.
    It takes C-STORE on `dicom_port` as AE `ae_title`; `config` adds to its configuration (LimitFindResults...)."""

    ae_title = "TESTPACS"

    def __init__(self, folder: Path, **config: object) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.dicom_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/dicom-web"
        self.config = folder / "orthanc.json"
        self.config.write_text(
            json.dumps(
                {
                    "Name": "cxr-serve-test-pacs",
                    "HttpPort": self.port,
                    "RemoteAccessAllowed": False,
                    "AuthenticationEnabled": True,
                    "RegisteredUsers": {USER: PASSWORD},
                    "DicomServerEnabled": True,
                    "DicomAet": self.ae_title,
                    "DicomPort": self.dicom_port,
                    "StorageDirectory": str(folder / "storage"),
                    "IndexDirectory": str(folder / "storage"),
                    "Plugins": [str(DICOMWEB_PLUGIN)],
                    "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "StudiesMetadata": "Full"},
                    **config,
                }
            )
        )
        self.output = (folder / "orthanc-output.txt").open("ab")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen([str(ORTHANC), str(self.config)], stdout=self.output, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/system", auth=(USER, PASSWORD), timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.3)
        raise TimeoutError("Orthanc did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None

    def client(self) -> DICOMwebClient:
        return DICOMwebClient(self.url, session=create_session_from_user_pass(USER, PASSWORD))

    def rest(self) -> httpx.Client:
        """Orthanc's own REST API (instances, modalities, the store command)."""
        return httpx.Client(base_url=f"http://127.0.0.1:{self.port}", auth=(USER, PASSWORD), timeout=60)
