"""The outbox: one row per analysed instance and destination, until that destination has the result.

Rows are queued in the transaction that records the analysis (services/bridge/spool.py), so a result is
never analysed without its deliveries nor delivered without its analysis. A delivery is `pending` (due
now or at its next retry), `delivered` (the destination acknowledged it: C-STORE Success, STOW 200, HL7
AA) or `dead` (refused for good, or retried until CXR_BRIDGE_MAX_ATTEMPTS; an operator's to replay).

What is sent is rebuilt from the spooled image and the kept result on each attempt, with the same
idempotency keys every time (the SR's derived UIDs, the HL7 control id): a resend after a crash between a
destination's acknowledgement and the commit here is one the destination recognises.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from services.bridge.database import Database

DeliveryState = Literal["pending", "delivered", "dead"]
DELIVERY_STATES: tuple[DeliveryState, ...] = ("pending", "delivered", "dead")

SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    sop_instance_uid TEXT NOT NULL REFERENCES instances (sop_instance_uid),
    destination TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    delivered_at REAL,
    PRIMARY KEY (sop_instance_uid, destination)
);
"""


@dataclass(frozen=True)
class Pending:
    sop_instance_uid: str
    destination: str
    attempts: int
    file: str  # the spooled image (services/bridge/spool.py)
    result: str  # the gateway's answer, JSON


def enqueue(db: sqlite3.Connection, sop: str, destinations: Sequence[str], now: float) -> None:
    """Within the caller's transaction: a pending delivery of `sop` to each destination (none twice)."""
    db.executemany(
        "INSERT OR IGNORE INTO deliveries (sop_instance_uid, destination, state, next_attempt_at) VALUES (?, ?, 'pending', ?)",
        [(sop, destination, now) for destination in destinations],
    )


class Outbox:
    def __init__(self, database: Database) -> None:
        self._db = database

    def due(self, now: float, limit: int) -> list[Pending]:
        rows = self._db.rows(
            "SELECT d.sop_instance_uid, d.destination, d.attempts, i.file, i.result"
            " FROM deliveries d JOIN instances i USING (sop_instance_uid)"
            " WHERE d.state = 'pending' AND d.next_attempt_at <= ? ORDER BY i.received_at LIMIT ?",
            (now, limit),
        )
        return [Pending(*row) for row in rows]

    def next_due(self) -> float | None:
        [(when,)] = self._db.rows("SELECT MIN(next_attempt_at) FROM deliveries WHERE state = 'pending'")
        return float(when) if when is not None else None

    def _update(self, item: Pending, assignments: str, *values: object) -> None:
        with self._db.transaction() as db:
            db.execute(
                f"UPDATE deliveries SET attempts = attempts + 1, {assignments} WHERE sop_instance_uid = ? AND destination = ?",
                (*values, item.sop_instance_uid, item.destination),
            )

    def delivered(self, item: Pending, detail: str, now: float) -> None:
        self._update(item, "state = 'delivered', detail = ?, delivered_at = ?", detail, now)

    def retry(self, item: Pending, why: str, at: float) -> None:
        self._update(item, "detail = ?, next_attempt_at = ?", why, at)

    def dead(self, item: Pending, why: str) -> None:
        self._update(item, "state = 'dead', detail = ?", why)

    def dead_letters(self) -> list[tuple[str, str, int, str]]:
        """(SOP Instance UID, destination, attempts, why) of every delivery that waits for an operator."""
        rows = self._db.rows(
            "SELECT sop_instance_uid, destination, attempts, detail FROM deliveries WHERE state = 'dead'"
            " ORDER BY sop_instance_uid, destination"
        )
        return [(str(sop), str(destination), int(attempts), str(why)) for sop, destination, attempts, why in rows]

    def replay(self, sop: str | None, destination: str | None, now: float) -> int:
        """Dead deliveries pending again, due now, attempts reset: one instance's, or all (None); one destination's or all."""
        where, values = "state = 'dead'", list[object]([now])
        for column, value in (("sop_instance_uid", sop), ("destination", destination)):
            if value is not None:
                where += f" AND {column} = ?"
                values.append(value)
        with self._db.transaction() as db:
            again = "state = 'pending', attempts = 0, next_attempt_at = ?"
            cursor = db.execute(f"UPDATE deliveries SET {again} WHERE {where}", values)
        return cursor.rowcount

    def counts(self) -> dict[tuple[str, str], int]:
        """(destination, state) → deliveries."""
        rows = self._db.rows("SELECT destination, state, COUNT(*) FROM deliveries GROUP BY destination, state")
        return {(destination, state): count for destination, state, count in rows}
