"""The audit trail: who asked what about which study, with what outcome; append-only, keyed and hash-chained.

Separate from the application log (HIPAA §164.312(b) audit controls; the
fields follow IHE ATNA's who / what / when / which object). One JSON object per
line in `<audit_dir>/audit.jsonl`:

    seq         0, 1, 2, ... across rotations
    time        UTC, ISO 8601
    request_id  the X-Request-ID of the exchange (also in the application log)
    actor       the client's name (gateway/identity.py); "anonymous" when no clients are configured or none was
                authenticated (a refused request)
    endpoint    the path called
    status      the HTTP status answered
    outcome     complete | partial | refused (4xx) | failed (5xx) | ok
    models      [{name, sha256}] of the models that produced the answer
    study       HMAC-SHA256 of the Study Instance UID under the audit key, or null: never patient data
    review      only on a sign-off (gateway/routes/reviews.py): {preliminary_sop, verified_sop, verdicts:
                {finding: accepted | rejected | modified}}, the result's UIDs (no patient identifier); the
                reviewer is the actor
    prev        the previous record's `hash` (64 zeros for the first)
    hash        HMAC-SHA256, under the audit key, of this record's canonical JSON without `hash`

The key (GATEWAY_AUDIT_KEY_FILE, a mounted secret) is kept apart from the trail: whoever can write the
trail but does not hold the key cannot rewrite it consistently. Changing, removing or reordering a record
breaks the chain at that record; `python -m gateway audit verify` (with the key) reports the first broken
one. A full file is renamed `audit-<last seq>.jsonl` and the chain continues in a new file.

Each record is on disk (fsync'd) before the last byte of its answer is sent (gateway/routes/observation.py);
records that arrive while one is being written are written and synced together (group commit).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from services.contract.priority import Priority

ACTIVE_FILE = "audit.jsonl"
GENESIS = "0" * 64


class AuditKey:
    """Two keys derived from the secret, one per use: sealing the chain, and hashing study UIDs."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the audit key must be at least 16 bytes")
        self._chain = hmac.new(secret, b"cxr-serve audit chain", hashlib.sha256).digest()
        self._study = hmac.new(secret, b"cxr-serve audit study", hashlib.sha256).digest()

    def seal(self, record: dict[str, Any]) -> str:
        body = {key: value for key, value in record.items() if key != "hash"}
        canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
        return hmac.new(self._chain, canonical, hashlib.sha256).hexdigest()

    def sealed(self, record: dict[str, Any]) -> bool:
        return hmac.compare_digest(self.seal(record), str(record.get("hash", "")))

    def study_hash(self, study_uid: str) -> str:
        return hmac.new(self._study, study_uid.encode(), hashlib.sha256).hexdigest()


def read_key(path: Path) -> AuditKey:
    return AuditKey(path.read_text().strip().encode())


def load_key(path: Path) -> AuditKey:
    """The key in `path`; made once (random, mode 0600) when the file does not exist yet."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32))
    return read_key(path)


@dataclass(frozen=True)
class AuditEvent:
    request_id: str
    actor: str
    endpoint: str
    status: int
    outcome: str
    models: list[dict[str, str | None]]
    study: str | None
    review: ReviewNote | None = None


@dataclass
class ReviewNote:
    """A sign-off's record: which result, and the verdict per finding; the verified SR once it is stored."""

    preliminary_sop: str
    verdicts: dict[str, str]
    verified_sop: str | None = None


@dataclass
class AuditNote:
    """What a route knows for the audit record (kept in request.state.audit); status and actor come later.

    A stream updates `outcome` when it completes, before its record is written.
    """

    models: list[dict[str, str | None]]
    study_uid: str | None = None
    outcome: str | None = None
    failed_stages: list[str] = field(default_factory=list)  # for the log line of a partial result
    priority: Priority | None = None  # for the log line, once the route has read it
    review: ReviewNote | None = None  # a sign-off (gateway/routes/reviews.py)


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


def records(folder: Path, after_seq: int = -1) -> list[dict[str, Any]]:
    """Every record with a seq above `after_seq`, oldest first (whole rotated files before it are skipped)."""
    found: list[dict[str, Any]] = []
    for path in chain_files(folder):
        if path.name != ACTIVE_FILE and int(path.stem.removeprefix("audit-")) <= after_seq:
            continue  # a rotated file is named by its last seq
        for line in path.read_text(encoding="utf-8").splitlines():
            record: dict[str, Any] = json.loads(line)
            if int(record["seq"]) > after_seq:
                found.append(record)
    return found


def _last_record(folder: Path) -> dict[str, Any] | None:
    for path in reversed(chain_files(folder)):
        lines = path.read_text(encoding="utf-8").splitlines()
        if lines:
            record: dict[str, Any] = json.loads(lines[-1])
            return record
    return None


@dataclass
class _Batch:
    events: list[AuditEvent] = field(default_factory=list)
    task: asyncio.Future[None] | None = None


class AuditTrail:
    def __init__(self, folder: Path, key: AuditKey, max_bytes: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.key = key
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        last = _last_record(folder)
        if last is not None and not key.sealed(last):
            raise ValueError(
                f"the last audit record in {folder} is not sealed by this audit key (a wrong key, or the record "
                "was changed): run `python -m gateway audit verify`"
            )
        self._seq = -1 if last is None else int(last["seq"])
        self._prev = GENESIS if last is None else str(last["hash"])
        self._open = _Batch()
        self._last: asyncio.Future[None] | None = None

    def study_hash(self, study_uid: str) -> str:
        return self.key.study_hash(study_uid)

    @property
    def last_seq(self) -> int:
        """The seq of the last record on disk (-1 for an empty trail)."""
        return self._seq

    async def record(self, event: AuditEvent) -> None:
        """Returns once the record is on disk. Records arriving while a write is under way join the next one."""
        batch = self._open
        batch.events.append(event)
        if batch.task is None:
            batch.task = asyncio.ensure_future(self._commit(batch, self._last))
            self._last = batch.task
        await asyncio.shield(batch.task)  # a caller that is cancelled does not cancel the others' write

    async def _commit(self, batch: _Batch, previous: asyncio.Future[None] | None) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # in order; the batch before fails (or not) on its own
        self._open = _Batch()  # from here on, arrivals wait for the next write
        await asyncio.to_thread(self.append, *batch.events)

    def append(self, *events: AuditEvent) -> None:
        """Seal, write and fsync `events` (the async path's worker; also tools and tests). The chain moves on
        only once they are on disk: a failed write leaves it where it was."""
        with self._lock:
            seq, prev, lines = self._seq, self._prev, []
            for event in events:
                seq += 1
                record: dict[str, Any] = {
                    "seq": seq,
                    "time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
                    **event.__dict__,
                    "prev": prev,
                }
                if event.review is None:  # the field is only on sign-offs
                    del record["review"]
                else:
                    record["review"] = asdict(event.review)
                prev = record["hash"] = self.key.seal(record)
                lines.append(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
            self._write("".join(lines).encode())
            self._seq, self._prev = seq, prev

    def _write(self, data: bytes) -> None:
        active = self.folder / ACTIVE_FILE
        if active.exists() and active.stat().st_size + len(data) > self._max_bytes:
            active.rename(self.folder / f"audit-{self._seq:012d}.jsonl")
            _sync_folder(self.folder)
        created = not active.exists()
        with active.open("ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if created:
            _sync_folder(self.folder)


def _sync_folder(folder: Path) -> None:
    """A new or renamed file survives a crash only once its folder's entry is synced too."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@dataclass(frozen=True)
class Verification:
    records: int
    first_seq: int | None
    broken: str | None  # where and why the chain first breaks; None when intact

    @property
    def ok(self) -> bool:
        return self.broken is None


def verify(folder: Path, key: AuditKey) -> Verification:
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
            problem = _problem(key, record, seq, prev, expected_seq)
            if problem:
                return Verification(count, first_seq, f"{where} (seq {seq}): {problem}")
            count, prev, expected_seq = count + 1, record["hash"], seq + 1
            first_seq = seq if first_seq is None else first_seq
    return Verification(count, first_seq, None)


def _problem(key: AuditKey, record: dict[str, Any], seq: int, prev: str | None, expected_seq: int | None) -> str | None:
    if not key.sealed(record):
        return "its seal does not match under this key (the record was changed, or the key is not the trail's)"
    if expected_seq is not None and seq != expected_seq:
        return f"sequence jumps from {expected_seq - 1} to {seq} (records removed or reordered)"
    if prev is not None and record.get("prev") != prev:
        return "it does not follow the previous record's hash (a record before it was changed, removed or inserted)"
    if prev is None and seq == 0 and record.get("prev") != GENESIS:
        return "the first record does not start the chain"
    return None
