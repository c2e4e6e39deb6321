"""The bridge's durable state: each received instance on disk and in SQLite before its C-STORE is answered.

An instance is written to `instances/` (a temporary file, fsync'd, renamed, the folder fsync'd) and its row
committed (WAL, synchronous=FULL) before the SCP answers Success, so a power cut or a kill -9 after the
answer loses nothing. The SOP Instance UID is the key: a resend of an instance already received is answered
Success and not analysed twice.

States: `received` (waiting for its analysis or a retry), `analysed` (the gateway's answer is kept),
`refused` (the gateway will never accept it: a 4xx), `dead` (retried until CXR_BRIDGE_MAX_ATTEMPTS; an
operator's to look at). One bridge process owns a state folder: SQLite's lock keeps a second one out.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from services.contract.dicom import DicomReferences

State = Literal["received", "analysed", "refused", "dead"]
STATES: tuple[State, ...] = ("received", "analysed", "refused", "dead")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    sop_instance_uid TEXT PRIMARY KEY,
    study_instance_uid TEXT NOT NULL,
    file TEXT NOT NULL,
    received_at REAL NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    result TEXT
)
"""


@dataclass(frozen=True)
class Received:
    sop_instance_uid: str
    study_instance_uid: str
    file: str
    attempts: int


def _durable_write(path: Path, data: bytes) -> None:
    temporary = path.with_suffix(".partial")
    with temporary.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


class Spool:
    def __init__(self, folder: Path) -> None:
        self.instances = folder / "instances"
        self.instances.mkdir(parents=True, exist_ok=True)
        # A busy timeout: the operator's CLI (services/bridge/__main__.py) writes beside the running bridge.
        self._db = sqlite3.connect(folder / "state.sqlite3", check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)
        self._lock = threading.Lock()  # the SCP's association threads and the analyser share one connection

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def accept(self, data: bytes, references: DicomReferences, now: float) -> bool:
        """Keep `data` durably; True for a new instance, False for a resend of one already received."""
        sop = references.sop_instance_uid
        name = hashlib.sha256(sop.encode()).hexdigest() + ".dcm"  # a UID is the key, never a path
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM instances WHERE sop_instance_uid = ?", (sop,)).fetchone():
                return False
            _durable_write(self.instances / name, data)
            db.execute(
                "INSERT INTO instances (sop_instance_uid, study_instance_uid, file, received_at, state, next_attempt_at)"
                " VALUES (?, ?, ?, ?, 'received', ?)",
                (sop, references.study_instance_uid, name, now, now),
            )
        return True

    def due(self, now: float, limit: int) -> list[Received]:
        """Instances waiting for analysis whose next attempt is due, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT sop_instance_uid, study_instance_uid, file, attempts FROM instances"
                " WHERE state = 'received' AND next_attempt_at <= ? ORDER BY received_at LIMIT ?",
                (now, limit),
            ).fetchall()
        return [Received(*row) for row in rows]

    def next_due(self) -> float | None:
        with self._lock:
            (when,) = self._db.execute("SELECT MIN(next_attempt_at) FROM instances WHERE state = 'received'").fetchone()
        return float(when) if when is not None else None

    def read(self, item: Received) -> bytes:
        return (self.instances / item.file).read_bytes()

    def finish(self, sop: str, state: State, detail: str, result: str | None = None) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE instances SET state = ?, detail = ?, result = ?, attempts = attempts + 1 WHERE sop_instance_uid = ?",
                (state, detail, result, sop),
            )

    def retry(self, sop: str, detail: str, at: float) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE instances SET attempts = attempts + 1, detail = ?, next_attempt_at = ? WHERE sop_instance_uid = ?",
                (detail, at, sop),
            )

    def dead_letters(self) -> list[tuple[str, str, int, str]]:
        """(SOP Instance UID, state, attempts, why) of every instance that will not be analysed without an operator."""
        with self._lock:
            rows = self._db.execute(
                "SELECT sop_instance_uid, state, attempts, detail FROM instances"
                " WHERE state IN ('dead', 'refused') ORDER BY received_at"
            ).fetchall()
        return [(str(sop), str(state), int(attempts), str(detail)) for sop, state, attempts, detail in rows]

    def replay(self, sop: str | None, now: float) -> int:
        """Dead (and refused) instances back in the queue, due now, their attempts reset: one, or all with None."""
        where = "state IN ('dead', 'refused')" + ("" if sop is None else " AND sop_instance_uid = ?")
        with self._transaction() as db:
            cursor = db.execute(
                f"UPDATE instances SET state = 'received', attempts = 0, next_attempt_at = ? WHERE {where}",
                (now,) if sop is None else (now, sop),
            )
        return cursor.rowcount

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM instances GROUP BY state").fetchall()
        return {state: count for state, count in rows}
