"""The bridge's durable state: each received instance on disk and in SQLite before its C-STORE is answered.

An instance is written to `instances/` (a temporary file, fsync'd, renamed, the folder fsync'd) and its row
committed (WAL, synchronous=FULL) before the SCP answers Success, so a power cut or a kill -9 after the
answer loses nothing. The SOP Instance UID is the key: a resend of an instance already received is answered
Success and not analysed twice. A STAT instance (services/contract/priority.py: the C-STORE's Priority HIGH)
is analysed before every routine one due with it.

States: `received` (waiting for its analysis or a retry), `analysed` (the gateway's answer is kept),
`refused` (the gateway will never accept it: a 4xx), `dead` (retried until CXR_BRIDGE_MAX_ATTEMPTS; an
operator's to look at), `signed` (not received but made here: a radiologist's verified SR, kept for its
signed ORU to the RIS, pacs/review_api.py). An analysed instance's deliveries (services/bridge/outbox.py) are queued in the
same transaction that records its result. The database: services/bridge/database.py.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from services.bridge import outbox
from services.bridge.database import Database
from services.contract.dicom import DicomReferences
from services.contract.priority import Priority

State = Literal["received", "analysed", "refused", "dead", "signed"]
STATES: tuple[State, ...] = ("received", "analysed", "refused", "dead", "signed")

SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    sop_instance_uid TEXT PRIMARY KEY,
    study_instance_uid TEXT NOT NULL,
    file TEXT NOT NULL,
    received_at REAL NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    result TEXT,
    priority TEXT NOT NULL DEFAULT 'routine'
);
"""
# Columns added since a state folder may have been made, each with the value its existing rows take.
ADDED_COLUMNS = {"priority": "TEXT NOT NULL DEFAULT 'routine'"}


@dataclass(frozen=True)
class Received:
    sop_instance_uid: str
    study_instance_uid: str
    file: str
    attempts: int
    priority: Priority


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


def _file_name(sop: str) -> str:
    return hashlib.sha256(sop.encode()).hexdigest() + ".dcm"  # a UID is the key, never a path


class Spool:
    def __init__(self, folder: Path, database: Database) -> None:
        self.instances = folder / "instances"
        self.instances.mkdir(parents=True, exist_ok=True)
        self._db = database
        database.add_columns("instances", ADDED_COLUMNS)

    def accept(self, data: bytes, references: DicomReferences, priority: Priority, now: float) -> bool:
        """Keep `data` durably; True for a new instance, False for a resend of one already received."""
        sop = references.sop_instance_uid
        name = _file_name(sop)
        with self._db.transaction() as db:
            if db.execute("SELECT 1 FROM instances WHERE sop_instance_uid = ?", (sop,)).fetchone():
                return False
            _durable_write(self.instances / name, data)
            db.execute(
                "INSERT INTO instances (sop_instance_uid, study_instance_uid, file, received_at, state, next_attempt_at,"
                " priority) VALUES (?, ?, ?, ?, 'received', ?, ?)",
                (sop, references.study_instance_uid, name, now, now, priority.value),
            )
        return True

    def signed(self, data: bytes, sop: str, study: str, result: str, destinations: Sequence[str], now: float) -> None:
        """A verified SR kept with its signature (`result`, JSON) and a delivery due now to each destination."""
        name = _file_name(sop)
        with self._db.transaction() as db:
            if db.execute("SELECT 1 FROM instances WHERE sop_instance_uid = ?", (sop,)).fetchone():
                return  # kept already: one signature per result
            _durable_write(self.instances / name, data)
            db.execute(
                "INSERT INTO instances (sop_instance_uid, study_instance_uid, file, received_at, state, next_attempt_at,"
                " detail, result) VALUES (?, ?, ?, ?, 'signed', ?, 'signed', ?)",
                (sop, study, name, now, now, result),
            )
            outbox.enqueue(db, sop, destinations, now)

    def due(self, now: float, limit: int) -> list[Received]:
        """Instances waiting for analysis whose next attempt is due: STAT first, then oldest first."""
        rows = self._db.rows(
            "SELECT sop_instance_uid, study_instance_uid, file, attempts, priority FROM instances"
            " WHERE state = 'received' AND next_attempt_at <= ? ORDER BY priority = 'stat' DESC, received_at LIMIT ?",
            (now, limit),
        )
        return [Received(sop, study, file, attempts, Priority(priority)) for sop, study, file, attempts, priority in rows]

    def next_due(self) -> float | None:
        [(when,)] = self._db.rows("SELECT MIN(next_attempt_at) FROM instances WHERE state = 'received'")
        return float(when) if when is not None else None

    def read(self, file: str) -> bytes:
        return (self.instances / file).read_bytes()

    def finish(self, sop: str, state: State, detail: str) -> None:
        """An outcome without a result: `refused` or `dead`."""
        with self._db.transaction() as db:
            db.execute(
                "UPDATE instances SET state = ?, detail = ?, attempts = attempts + 1 WHERE sop_instance_uid = ?",
                (state, detail, sop),
            )

    def analysed(self, sop: str, result: str, destinations: Sequence[str], now: float) -> None:
        """The gateway's answer kept, and a delivery due now to each destination, in one transaction."""
        with self._db.transaction() as db:
            db.execute(
                "UPDATE instances SET state = 'analysed', detail = 'complete', result = ?, attempts = attempts + 1"
                " WHERE sop_instance_uid = ?",
                (result, sop),
            )
            outbox.enqueue(db, sop, destinations, now)

    def retry(self, sop: str, detail: str, at: float) -> None:
        with self._db.transaction() as db:
            db.execute(
                "UPDATE instances SET attempts = attempts + 1, detail = ?, next_attempt_at = ? WHERE sop_instance_uid = ?",
                (detail, at, sop),
            )

    def dead_letters(self) -> list[tuple[str, str, int, str]]:
        """(SOP Instance UID, state, attempts, why) of every instance that will not be analysed without an operator."""
        rows = self._db.rows(
            "SELECT sop_instance_uid, state, attempts, detail FROM instances"
            " WHERE state IN ('dead', 'refused') ORDER BY received_at"
        )
        return [(str(sop), str(state), int(attempts), str(detail)) for sop, state, attempts, detail in rows]

    def replay(self, sop: str | None, now: float) -> int:
        """Dead (and refused) instances back in the queue, due now, their attempts reset: one, or all with None."""
        where = "state IN ('dead', 'refused')" + ("" if sop is None else " AND sop_instance_uid = ?")
        with self._db.transaction() as db:
            cursor = db.execute(
                f"UPDATE instances SET state = 'received', attempts = 0, next_attempt_at = ? WHERE {where}",
                (now,) if sop is None else (now, sop),
            )
        return cursor.rowcount

    def counts(self) -> dict[str, int]:
        rows = self._db.rows("SELECT state, COUNT(*) FROM instances GROUP BY state")
        return {state: count for state, count in rows}
