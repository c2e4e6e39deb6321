"""The bridge's state database: one SQLite file (WAL, synchronous=FULL) shared by the spool and the outbox.

A committed transaction is on disk before the call returns, so a kill -9 or a power cut after it loses
nothing. One bridge process owns a state folder; the operator's CLI reads and writes beside it (a busy
timeout lets the two take turns). More than one bridge replica needs a folder each (docs/integrators.md, "DICOM C-STORE in").
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class Database:
    def __init__(self, path: Path, schema: str) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(schema)
        self._lock = threading.Lock()  # the SCP's association threads and the event loop share one connection

    def add_columns(self, table: str, columns: dict[str, str]) -> None:
        """Columns a table made by an earlier release lacks, added (existing rows take each one's default)."""
        with self.transaction() as db:
            present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            for name, definition in columns.items():
                if name not in present:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {definition}")

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def rows(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, parameters).fetchall()
