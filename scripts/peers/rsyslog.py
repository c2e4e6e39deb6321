"""A real audit repository: Debian's rsyslogd as a child process on loopback, taking syslog over TLS (RFC 5425,
its gtls driver) and writing each message as received, one per line, to `received.txt`.

Used by the audit trail's tests (tests/gateway/test_audit_repository.py). stop() and start() keep its port,
as a repository restart would.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from scripts.launcher.process import free_port

RSYSLOGD = Path("/usr/sbin/rsyslogd")
GTLS_DRIVER = Path("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so")
INSTALL = "make test-packages (as root; it runs apt-get install -y rsyslog rsyslog-gnutls)"


def installed() -> bool:
    return RSYSLOGD.exists() and GTLS_DRIVER.exists()


CONFIG = """
global(
  workDirectory="{work}"
  defaultNetstreamDriver="gtls"
  defaultNetstreamDriverCAFile="{ca}"
  defaultNetstreamDriverCertFile="{cert}"
  defaultNetstreamDriverKeyFile="{key}"
)
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
template(name="asReceived" type="string" string="%rawmsg%\\n")
ruleset(name="audit") {{
  action(type="omfile" file="{received}" template="asReceived")
}}
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="audit")
"""


class Rsyslog:
    def __init__(self, folder: Path, ca: str, cert: str, key: str) -> None:
        self.folder = folder
        self.port = free_port()
        self.received = folder / "received.txt"
        (folder / "work").mkdir(parents=True, exist_ok=True)
        self.config = folder / "rsyslog.conf"
        values = {"work": folder / "work", "ca": ca, "cert": cert, "key": key, "received": self.received, "port": self.port}
        self.config.write_text(CONFIG.format(**values))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        output = (self.folder / "rsyslogd-output.txt").open("ab")
        command = [str(RSYSLOGD), "-n", "-f", str(self.config), "-i", str(self.folder / "rsyslogd.pid")]
        self._process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"rsyslogd exited: {(self.folder / 'rsyslogd-output.txt').read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        raise TimeoutError("rsyslogd did not listen")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=20)
            self._process = None

    def messages(self) -> list[str]:
        return self.received.read_text().splitlines() if self.received.exists() else []
