"""The audit trail: who asked what about which study, with what outcome; append-only and hash-chained.

Separate from the application log (HIPAA §164.312(b) audit controls; the
fields follow IHE ATNA's who / what / when / which object). One JSON object per
line in `<audit_dir>/audit.jsonl`:

    seq         0, 1, 2, ... across rotations
    time        UTC, ISO 8601
    request_id  the X-Request-ID of the exchange (also in the application log)
    actor       the API key's id (`key-` + 12 hex of its SHA-256), never the key; "anonymous" without keys
    endpoint    the path called
    status      the HTTP status answered
    outcome     complete | partial | refused (4xx) | failed (5xx) | ok
    models      [{name, sha256}] of the models that produced the answer
    study       HMAC-SHA256 of the Study Instance UID under the audit key, or null: never patient data
    prev        the previous record's `hash` (64 zeros for the first)
    hash        SHA-256 of this record's canonical JSON without `hash`

Changing, removing or reordering a record breaks the chain at that record;
`python -m gateway audit verify` reports the first broken one. A full file is
renamed `audit-<last seq>.jsonl` and the chain continues in a new file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACTIVE_FILE = "audit.jsonl"
KEY_FILE = "audit.key"
GENESIS = "0" * 64


def key_id(api_key: str) -> str:
    """How the trail names an API key: enough to tell keys apart, useless to call the API with."""
    return "key-" + hashlib.sha256(api_key.encode()).hexdigest()[:12]


def record_hash(record: dict[str, Any]) -> str:
    body = {key: value for key, value in record.items() if key != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class AuditEvent:
    request_id: str
    actor: str
    endpoint: str
    status: int
    outcome: str
    models: list[dict[str, str | None]]
    study: str | None


@dataclass
class AuditNote:
    """What a route knows for the audit record (kept in request.state.audit); status and actor come later.

    A stream updates `outcome` when it completes, before its record is written.
    """

    models: list[dict[str, str | None]]
    study_uid: str | None = None
    outcome: str | None = None
    failed_stages: list[str] = field(default_factory=list)  # for the log line of a partial result


def outcome_of(status: int, note: AuditNote | None) -> str:
    if status >= 500:
        return "failed"
    if status >= 400:
        return "refused"
    return note.outcome if note is not None and note.outcome else "ok"


def chain_files(folder: Path) -> list[Path]:
    """Rotated files oldest first, then the active one."""
    rotated = sorted(folder.glob("audit-*.jsonl"))
    active = folder / ACTIVE_FILE
    return [*rotated, active] if active.exists() else rotated


def load_key(folder: Path, key: str | None) -> bytes:
    """The configured key, or the one kept beside the trail (made once, mode 0600)."""
    if key:
        return key.encode()
    path = folder / KEY_FILE
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def _last_record(folder: Path) -> dict[str, Any] | None:
    for path in reversed(chain_files(folder)):
        lines = path.read_text(encoding="utf-8").splitlines()
        if lines:
            record: dict[str, Any] = json.loads(lines[-1])
            return record
    return None


class AuditTrail:
    def __init__(self, folder: Path, key: bytes, max_bytes: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._key = key
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        last = _last_record(folder)
        if last is not None and record_hash(last) != last.get("hash"):
            raise ValueError(f"the last audit record in {folder} does not match its hash: run `python -m gateway audit verify`")
        self._seq = -1 if last is None else int(last["seq"])
        self._prev = GENESIS if last is None else str(last["hash"])

    def study_hash(self, study_uid: str) -> str:
        return hmac.new(self._key, study_uid.encode(), hashlib.sha256).hexdigest()

    def append(self, event: AuditEvent) -> None:
        # A few hundred bytes appended and flushed: cheap enough for the request's own thread.
        with self._lock:
            record: dict[str, Any] = {
                "seq": self._seq + 1,
                "time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
                **event.__dict__,
                "prev": self._prev,
            }
            record["hash"] = record_hash(record)
            line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
            active = self.folder / ACTIVE_FILE
            if active.exists() and active.stat().st_size + len(line) > self._max_bytes:
                active.rename(self.folder / f"audit-{self._seq:012d}.jsonl")
            with active.open("a", encoding="utf-8") as handle:
                handle.write(line)
            self._seq, self._prev = record["seq"], record["hash"]


@dataclass(frozen=True)
class Verification:
    records: int
    first_seq: int | None
    broken: str | None  # where and why the chain first breaks; None when intact

    @property
    def ok(self) -> bool:
        return self.broken is None


def verify(folder: Path) -> Verification:
    """Walk every file of the chain in order; stop at the first record that does not follow from the last."""
    count, first_seq, prev, expected_seq = 0, None, None, None
    for path in chain_files(folder):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            where = f"{path.name} line {number}"
            try:
                record = json.loads(line)
                seq = int(record["seq"])
            except (ValueError, KeyError, TypeError):
                return Verification(count, first_seq, f"{where}: not an audit record")
            problem = _problem(record, seq, prev, expected_seq)
            if problem:
                return Verification(count, first_seq, f"{where} (seq {seq}): {problem}")
            count, prev, expected_seq = count + 1, record["hash"], seq + 1
            first_seq = seq if first_seq is None else first_seq
    return Verification(count, first_seq, None)


def _problem(record: dict[str, Any], seq: int, prev: str | None, expected_seq: int | None) -> str | None:
    if record_hash(record) != record.get("hash"):
        return "its content does not match its hash (the record was changed)"
    if expected_seq is not None and seq != expected_seq:
        return f"sequence jumps from {expected_seq - 1} to {seq} (records removed or reordered)"
    if prev is not None and record.get("prev") != prev:
        return "it does not follow the previous record's hash (a record before it was changed, removed or inserted)"
    if prev is None and seq == 0 and record.get("prev") != GENESIS:
        return "the first record does not start the chain"
    return None
