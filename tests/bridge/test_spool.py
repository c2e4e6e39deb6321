"""The spool's queue order on its real SQLite database: STAT first among the instances due, then oldest first;
and a state folder made before priorities existed opened by this release, its queue kept, each row routine."""

from __future__ import annotations

import sqlite3

from services.bridge.state import open_state
from services.contract.dicom import DicomReferences
from services.contract.priority import Priority

# The instances table as the release before priorities made it.
EARLIER_SCHEMA = """
CREATE TABLE instances (
    sop_instance_uid TEXT PRIMARY KEY, study_instance_uid TEXT NOT NULL, file TEXT NOT NULL,
    received_at REAL NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL, detail TEXT NOT NULL DEFAULT '', result TEXT
);
INSERT INTO instances (sop_instance_uid, study_instance_uid, file, received_at, state, next_attempt_at)
    VALUES ('1.2.9', '1.2', 'old.dcm', 1.0, 'received', 1.0);
"""


def _references(sop: str) -> DicomReferences:
    uids = {"study_instance_uid": "1.2", "series_instance_uid": "1.2.3", "sop_instance_uid": sop}
    return DicomReferences(**uids, sop_class_uid="1.2.840.10008.5.1.4.1.1.1.1", modality="DX")


def test_stat_is_due_first_then_the_oldest_and_an_earlier_state_folder_keeps_its_queue(tmp_path):
    with sqlite3.connect(tmp_path / "state.sqlite3") as earlier:
        earlier.executescript(EARLIER_SCHEMA)
    state = open_state(tmp_path)
    try:
        received = [("1.2.10", Priority.ROUTINE, 2.0), ("1.2.11", Priority.STAT, 3.0), ("1.2.12", Priority.ROUTINE, 4.0)]
        for sop, priority, at in received:
            assert state.spool.accept(b"DICM", _references(sop), priority, at)
        due = state.spool.due(now=10.0, limit=10)
        assert [(item.sop_instance_uid, item.priority) for item in due] == [
            ("1.2.11", Priority.STAT),
            ("1.2.9", Priority.ROUTINE),  # the earlier release's row: routine, still queued
            ("1.2.10", Priority.ROUTINE),
            ("1.2.12", Priority.ROUTINE),
        ]
    finally:
        state.close()
    reopened = open_state(tmp_path)  # the column is added once
    reopened.close()
