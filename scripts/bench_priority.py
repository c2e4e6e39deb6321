"""STAT under routine load: `python -m scripts.bench_priority` starts the cpu stack (as `make bench` does, the
pipeline's slots cut to 8 per backend, 2 of them kept for STAT) and measures, side by side in one run:

- idle: STAT and routine cxr-report requests one at a time, alternating, on an otherwise idle stack;
- loaded: the same probes, one at a time, while routine workers keep every routine slot busy (each sends its
  next request as soon as one is answered or refused; a refused one waits half a second);

then the target of docs/performance.md ("STAT under routine load"): a STAT request's p50 under load / its p50
idle (<= 1.5), and no STAT request refused. A routine probe under the same load shows what STAT would get
without priority. Writes bench/results/priority.json. A benchmark, never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import httpx

from scripts.bench.calls import Backends, Refused, images
from scripts.benchlib import OUTPUT_TOKENS, machine, running_stack
from scripts.launcher import config
from scripts.loadtest import percentiles
from services.contract.paths import REPO_ROOT
from services.contract.priority import Priority
from services.contract.roles import Role

RESULTS = REPO_ROOT / "bench" / "results" / "priority.json"
LOGS = REPO_ROOT / "logs" / "bench-priority"
SLOTS = 8  # per backend; GATEWAY_STAT_RESERVED_SHARE's default keeps 2 of them for STAT
TARGET_RATIO = 1.5


async def _probe(b: Backends, image: bytes, priority: Priority) -> tuple[float | None, int]:
    """Seconds from the first send to the answer, and the 429s on the way (a refused probe retries after 0.5 s)."""
    started, refused = time.perf_counter(), 0
    while True:
        try:
            await b.pipeline(image, priority)
            return time.perf_counter() - started, refused
        except Refused:
            refused += 1
            if refused >= 20:
                return None, refused
            await asyncio.sleep(0.5)


async def _probes(b: Backends, xrays: list[bytes], count: int) -> dict[str, dict]:
    seconds: dict[str, list[float]] = {p.value: [] for p in Priority}
    refused: Counter[str] = Counter()
    for index in range(count):
        for priority in (Priority.STAT, Priority.ROUTINE):
            took, refusals = await _probe(b, xrays[index % len(xrays)], priority)
            refused[priority.value] += refusals
            if took is not None:
                seconds[priority.value].append(took)
    return {p: {"latency_ms": percentiles(s), "seconds": s, "refused_429": refused[p]} for p, s in seconds.items()}


async def _routine_worker(b: Backends, xrays: list[bytes], stop: asyncio.Event, counts: Counter[str]) -> None:
    index = 0
    while not stop.is_set():
        try:
            await b.pipeline(xrays[index % len(xrays)], Priority.ROUTINE)
            counts["answered"] += 1
        except Refused:
            counts["refused_429"] += 1
            await asyncio.sleep(0.5)
        except (httpx.HTTPError, RuntimeError):
            counts["failed"] += 1
        index += 1


async def measure(stack: config.StackConfig, probes: int, workers: int, settle_s: float) -> dict:
    xrays = images()
    async with httpx.AsyncClient(timeout=900, limits=httpx.Limits(max_connections=64)) as client:
        b = Backends(stack, client, OUTPUT_TOKENS)
        for image in xrays[:2]:  # warm-up
            await b.pipeline(image)
        idle = await _probes(b, xrays, probes)
        stop, counts = asyncio.Event(), Counter[str]()
        load = [asyncio.create_task(_routine_worker(b, xrays, stop, counts)) for _ in range(workers)]
        await asyncio.sleep(settle_s)  # every routine slot taken
        loaded = await _probes(b, xrays, probes)
        stop.set()
        await asyncio.gather(*load)
    return {"idle": idle, "loaded": loaded, "routine_load": {"workers": workers, **counts}}


def summary(raw: dict) -> dict:
    def p50(phase: str, priority: Priority) -> float:
        return statistics.median(raw[phase][priority.value]["seconds"]) * 1000

    stat_ratio = p50("loaded", Priority.STAT) / p50("idle", Priority.STAT)
    return {
        "stat_p50_idle_ms": p50("idle", Priority.STAT),
        "stat_p50_loaded_ms": p50("loaded", Priority.STAT),
        "routine_p50_idle_ms": p50("idle", Priority.ROUTINE),
        "routine_p50_loaded_ms": p50("loaded", Priority.ROUTINE),
        "stat_loaded_over_idle": stat_ratio,
        "routine_loaded_over_idle": p50("loaded", Priority.ROUTINE) / p50("idle", Priority.ROUTINE),
        "stat_refused_429": raw["idle"]["stat"]["refused_429"] + raw["loaded"]["stat"]["refused_429"],
        "target": f"stat_loaded_over_idle <= {TARGET_RATIO} and stat_refused_429 == 0",
        "pass": stat_ratio <= TARGET_RATIO and raw["loaded"]["stat"]["refused_429"] == 0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--probes", type=int, default=5, help="STAT and routine probes per phase")
    parser.add_argument("--workers", type=int, default=SLOTS, help="routine workers: more than the routine slots")
    parser.add_argument("--settle-s", type=float, default=15.0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    slots = {f"GATEWAY_{role.upper()}_MAX_CONCURRENCY": str(SLOTS) for role in Role}
    started = time.monotonic()
    with running_stack(LOGS, **slots) as stack:
        raw = asyncio.run(measure(stack, args.probes, args.workers, args.settle_s))
    report = {
        "machine": machine(),
        "command": "python -m scripts.bench_priority",
        "elapsed_s": round(time.monotonic() - started),
        "slots_per_backend": SLOTS,
        "output_tokens": OUTPUT_TOKENS,
        "raw": raw,
        "summary": summary(raw),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    for name, value in report["summary"].items():
        print(f"{name}: {value:.3f}" if isinstance(value, float) else f"{name}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
