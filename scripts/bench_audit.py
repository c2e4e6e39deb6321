"""What writing each audit record to disk before its answer costs: `python -m scripts.bench_audit`.

Side by side in one run, on the same disk, each the median of alternating rounds:
- per record, one request at a time: `AuditTrail.record` as the gateway awaits it (written and fsync'd)
  against the same write without the fsync (what the trail cost before: written, flushed, not synced);
- records per second with 32 requests at once: group commit (one fsync for the records that arrived
  while the last one was written) against one fsync per record (each append synced on its own).
Writes bench/results/audit_fsync.json. The trail lives in a temporary folder on the disk that holds
the repository (where `make run` keeps logs/audit); pass --folder for the disk of a deployment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway.audit import AuditEvent, AuditKey, AuditTrail
from scripts.benchlib import machine
from services.contract.paths import REPO_ROOT

EVENT = AuditEvent("bench", "his", "/v1/analyze", 200, "complete", [{"name": "m", "sha256": "0" * 64}], "0" * 64)
KEY = AuditKey(b"bench-key-0123456789abcdef")


@contextmanager
def without_fsync() -> Iterator[None]:
    real = os.fsync
    os.fsync = lambda _fd: None
    try:
        yield
    finally:
        os.fsync = real


async def sequential_ms(folder: Path, records: int) -> float:
    trail = AuditTrail(folder, KEY, 1 << 30)
    times = []
    for _ in range(records):
        started = time.perf_counter()
        await trail.record(EVENT)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def concurrent_rate(folder: Path, records: int, concurrency: int, grouped: bool) -> float:
    trail = AuditTrail(folder, KEY, 1 << 30)
    per_worker = records // concurrency

    async def worker() -> None:
        for _ in range(per_worker):
            await (trail.record(EVENT) if grouped else asyncio.to_thread(trail.append, EVENT))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return per_worker * concurrency / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--records", type=int, default=400)
    parser.add_argument("--folder", type=Path, default=REPO_ROOT / "logs")
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    synced, unsynced, grouped, single = [], [], [], []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(dir=args.folder) as scratch:
            base = Path(scratch)
            synced.append(asyncio.run(sequential_ms(base / "synced", args.records)))
            with without_fsync():
                unsynced.append(asyncio.run(sequential_ms(base / "unsynced", args.records)))
            grouped.append(asyncio.run(concurrent_rate(base / "grouped", args.records, 32, grouped=True)))
            single.append(asyncio.run(concurrent_rate(base / "single", args.records, 32, grouped=False)))
    report = {
        "machine": machine(),
        "folder": str(args.folder),
        "sequential_ms_per_record": {"fsync": statistics.median(synced), "no_fsync": statistics.median(unsynced)},
        "fsync_cost_ms": statistics.median(synced) - statistics.median(unsynced),
        "concurrent_32_records_per_s": {"group_commit": statistics.median(grouped), "fsync_each": statistics.median(single)},
        "group_commit_speedup": statistics.median(grouped) / statistics.median(single),
        "runs": {"fsync": synced, "no_fsync": unsynced, "group_commit": grouped, "fsync_each": single},
    }
    out = REPO_ROOT / "bench" / "results" / "audit_fsync.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    seq, rate = report["sequential_ms_per_record"], report["concurrent_32_records_per_s"]
    print(f"one at a time: {seq['fsync']:.3f} ms per record synced, {seq['no_fsync']:.3f} ms not synced")
    print(f"fsync cost per audited request: {report['fsync_cost_ms']:.3f} ms (median of {args.rounds} rounds)")
    print(f"32 at once: {rate['group_commit']:.0f} records/s with group commit, {rate['fsync_each']:.0f} with one fsync each")
    print(f"group commit: {report['group_commit_speedup']:.2f}x")


if __name__ == "__main__":
    main()
