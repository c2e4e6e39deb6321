"""Ships the audit trail to the hospital's audit repository: syslog over TLS (RFC 5425), IHE ATNA's transport.

The trail on disk is the spool: the shipper sends every record after the last one the repository took
(its seq in `<audit_dir>/syslog-shipped.json`), so a repository that is down stops nothing and loses
nothing; the records wait and go when it is back, oldest first. The gateway keeps serving meanwhile and
says, once per outage, that the repository is unreachable (and `gateway_audit_unshipped` counts the
records waiting).

Syslog over TLS has no acknowledgement: a record written into a connection that the repository has just
lost is gone with it. The shipper checks the connection before each batch (a closed one is reopened and
the batch sent on the new one) and moves its mark only after a batch is written, so a repository sees
each record at least once; it names each by seq (in the message) for a repository that removes repeats.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from gateway import audit
from gateway.audit_export import syslog_frame

log = logging.getLogger("gateway")

CURSOR_FILE = "syslog-shipped.json"
BATCH = 200
POLL_S = 1.0


@dataclass(frozen=True)
class SyslogTarget:
    host: str
    port: int
    tls: ssl.SSLContext
    retry_s: float
    timeout_s: float


def tls_context(ca_file: Path | None, cert_file: Path | None, key_file: Path | None) -> ssl.SSLContext:
    """Verifies the repository against the hospital's CA; presents the gateway's certificate when one is set
    (ATNA's mutual node authentication)."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    if cert_file is not None:
        context.load_cert_chain(cert_file, key_file)
    return context


class SyslogShipper:
    def __init__(self, trail: audit.AuditTrail, target: SyslogTarget) -> None:
        self.trail = trail
        self.target = target
        self.source_id = f"cxr-serve-gateway@{socket.gethostname()}"
        self._cursor_path = trail.folder / CURSOR_FILE
        self.shipped = self._read_cursor()
        self._connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._down = False

    @property
    def unshipped(self) -> int:
        return max(0, self.trail.last_seq - self.shipped)

    def _read_cursor(self) -> int:
        try:
            return int(json.loads(self._cursor_path.read_text())["seq"])
        except FileNotFoundError:
            return -1

    def _save_cursor(self) -> None:
        partial = self._cursor_path.with_suffix(".tmp")
        with partial.open("w") as handle:
            json.dump({"seq": self.shipped}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        partial.replace(self._cursor_path)

    async def run(self) -> None:
        """Until cancelled: ship what is waiting, then wait for more; on failure wait `retry_s` and try again."""
        try:
            while True:
                try:
                    await self.ship_pending()
                except (OSError, ssl.SSLError, TimeoutError) as error:
                    self._disconnect()
                    if not self._down:
                        fields = {"repository": f"{self.target.host}:{self.target.port}", "error": type(error).__name__}
                        log.warning("audit repository unreachable; records wait in the trail", extra={"fields": fields})
                    self._down = True
                    await asyncio.sleep(self.target.retry_s)
                    continue
                await asyncio.sleep(POLL_S)
        finally:
            self._disconnect()

    async def ship_pending(self) -> None:
        while self.unshipped:
            pending = await asyncio.to_thread(audit.records, self.trail.folder, self.shipped)
            for start in range(0, len(pending), BATCH):
                batch = pending[start : start + BATCH]
                writer = await self._writer()
                writer.write(b"".join(syslog_frame(record, self.source_id) for record in batch))
                await asyncio.wait_for(writer.drain(), self.target.timeout_s)
                self.shipped = int(batch[-1]["seq"])
                await asyncio.to_thread(self._save_cursor)
            if self._down:
                log.info("audit repository reachable again", extra={"fields": {"shipped_to_seq": self.shipped}})
                self._down = False

    async def _writer(self) -> asyncio.StreamWriter:
        if self._connection is not None and self._connection[0].at_eof():
            self._disconnect()  # the repository closed it (a restart): reopen rather than write into it
        if self._connection is None:
            opening = asyncio.open_connection(self.target.host, self.target.port, ssl=self.target.tls)
            self._connection = await asyncio.wait_for(opening, self.target.timeout_s)
        return self._connection[1]

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection[1].close()
            self._connection = None
