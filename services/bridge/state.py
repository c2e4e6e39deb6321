"""The bridge's state folder opened: the spooled images, and the database with the spool's and the outbox's tables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.bridge import outbox, spool
from services.bridge.database import Database


@dataclass(frozen=True)
class State:
    database: Database
    spool: spool.Spool
    outbox: outbox.Outbox

    def close(self) -> None:
        self.database.close()


def open_state(folder: Path) -> State:
    folder.mkdir(parents=True, exist_ok=True)
    database = Database(folder / "state.sqlite3", spool.SCHEMA + outbox.SCHEMA)
    return State(database, spool.Spool(folder, database), outbox.Outbox(database))
