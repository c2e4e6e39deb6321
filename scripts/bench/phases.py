"""The measurements of `make bench`, each repeated in alternating rounds (A, B, A, B, ...) so that drift
on the machine hits every side of a comparison alike; every raw figure is returned for the JSON."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psutil

from scripts.bench.calls import Backends, resized_png, timed_batch
from scripts.benchlib import listening_process, resident_mb
from scripts.launcher import config
from scripts.loadtest import percentiles
from services.contract.roles import Role

ROUNDS = 3
CHAT_TOKENS = 16
CHATS = {1: 3, 16: 16}  # requests per side and round, by concurrency
# Per side and round, one at a time, gateway and direct interleaved: the p99 is read over all rounds (210).
ADDED_LATENCY_REQUESTS = 70
NAIVE_REQUESTS = 4  # per round: 12 over the run
# Every concurrency level sends one request per slot (one wave): what fits the bench's 15 minutes on 2 cores.
C16_REQUESTS = 16
CURVE = {4: 4, 32: 32, 64: 64}  # the concurrencies the rounds do not already measure, and their requests
RESIZE_REQUESTS = 8  # per variant and round, at c=8
KNEE_SHARE = 0.9  # the knee: the least concurrency reaching this share of the best throughput


async def gateway_overhead(b: Backends) -> list[dict]:
    """The same chat requests straight to vLLM and through the gateway's pass-through, at c=1 and c=16."""
    sides = {"direct": b.stack.url("report"), "gateway": b.gateway}
    rounds = []
    for _ in range(ROUNDS):
        measured = {}
        for concurrency, requests in CHATS.items():
            for side, base in sides.items():
                calls = [lambda i=i, base=base: b.chat(base, i, CHAT_TOKENS) for i in range(requests)]
                measured[f"{side}_c{concurrency}"] = await timed_batch(calls, concurrency)
        rounds.append(measured)
    return rounds


async def added_latency(b: Backends) -> dict:
    """Milliseconds the gateway adds to a one-token pass-through request, one request at a time: p50 per round
    (the target is their median), p99 over every request of the run (a p99 needs more than one round has)."""
    rounds, every = [], {"direct": [], "gateway": []}
    for _ in range(ROUNDS):
        seconds: dict[str, list[float]] = {"direct": [], "gateway": []}
        for index in range(ADDED_LATENCY_REQUESTS):
            for side, base in (("direct", b.stack.url("report")), ("gateway", b.gateway)):
                started = time.perf_counter()
                await b.chat(base, index, max_tokens=1)
                seconds[side].append(time.perf_counter() - started)
        rounds.append(_added(seconds))
        for side, measured in seconds.items():
            every[side].extend(measured)
    return {"rounds": rounds, "all_rounds": _added(every)}


def _added(seconds: dict[str, list[float]]) -> dict:
    direct, gateway = percentiles(seconds["direct"]), percentiles(seconds["gateway"])
    return {
        "requests_per_side": len(seconds["direct"]),
        "direct_ms": direct,
        "gateway_ms": gateway,
        "added_p50_ms": gateway["p50"] - direct["p50"],
        "added_p99_ms": gateway["p99"] - direct["p99"],
    }


class PhaseClock:
    """Prints each phase as it starts, with the seconds since the run began, and keeps what each one took."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        print(f"[{began - self.started:5.0f} s] {name}", flush=True)
        yield
        self.seconds[name] = round(time.monotonic() - began, 1)


class MemoryWatch:
    """Resident memory of every service, read every half second in a thread while a measurement runs."""

    def __init__(self, stack: config.StackConfig) -> None:
        self.processes = {role.value: listening_process(stack.roles[role].port) for role in Role}
        self.processes["gateway"] = listening_process(stack.gateway.port)
        self.peak_mb = dict.fromkeys(self.processes, 0.0)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def now_mb(self) -> dict[str, float]:
        return {name: resident_mb(process, with_children=True) for name, process in self.processes.items()}

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            for name, mb in self.now_mb().items():
                self.peak_mb[name] = max(self.peak_mb[name], mb)

    def __enter__(self) -> MemoryWatch:
        """Start watching afresh: the peak is this measurement's own."""
        self.peak_mb = self.now_mb()
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


async def pipeline_rounds(b: Backends, xrays: list[bytes], cxrs: list[dict], memory: MemoryWatch) -> list[dict]:
    """Per round: the naive sequential design and the pipeline at c=1 (with each stage's time alone), then
    the fracture VLM and the report LLM alone at c=16, then the pipeline at c=16 (memory read meanwhile)."""
    rounds = []
    for index in range(ROUNDS):
        picked = [(index * NAIVE_REQUESTS + i) % len(cxrs) for i in range(NAIVE_REQUESTS)]
        started = time.perf_counter()
        stages = [await b.naive(xrays[i], cxrs[i]) for i in picked]
        naive_s = time.perf_counter() - started
        measured: dict = {
            "naive": {"requests": len(picked), "throughput_rps": len(picked) / naive_s},
            "alone_c1_ms": {
                stage: statistics.median(s[stage] for s in stages) * 1000 for stage in ("classifier", "fracture", "report")
            },
            "pipeline_c1": await timed_batch([lambda i=i: b.pipeline(xrays[i]) for i in picked], 1),
        }
        spread = [i % len(xrays) for i in range(C16_REQUESTS)]
        measured["fracture_c16"] = await timed_batch([lambda i=i: b.fracture(xrays[i]) for i in spread], 16)
        measured["report_c16"] = await timed_batch([lambda i=i: b.report(cxrs[i % len(cxrs)]) for i in spread], 16)
        with memory:
            measured["pipeline_c16"] = await timed_batch([lambda i=i: b.pipeline(xrays[i]) for i in spread], 16)
        measured["resident_mb_peak_c16"] = dict(memory.peak_mb)
        rounds.append(measured)
    return rounds


async def curve(b: Backends, xrays: list[bytes]) -> dict[int, dict]:
    """The pipeline at the concurrencies the rounds leave out; every level sends at least one request per slot."""
    levels = {}
    for concurrency, requests in CURVE.items():
        calls = [lambda i=i: b.pipeline(xrays[i % len(xrays)]) for i in range(requests)]
        levels[concurrency] = await timed_batch(calls, concurrency)
    return levels


def knee(levels: dict[int, dict]) -> int:
    """The least concurrency whose throughput reaches KNEE_SHARE of the best: beyond it, latency grows for little."""
    best = max(level["throughput_rps"] for level in levels.values())
    return min(c for c, level in levels.items() if level["throughput_rps"] >= KNEE_SHARE * best)


def cpu_seconds(process: psutil.Process) -> float:
    total = 0.0
    for each in (process, *process.children(recursive=True)):
        times = each.cpu_times()
        total += times.user + times.system
    return total


async def resize_effect(b: Backends, xrays: list[bytes], side: int) -> list[dict]:
    """The fracture VLM server's CPU seconds per request given the X-ray as sent (JPEG, 1-2 Mpx) or already
    resized to its processor's input size (PNG): the model's input is the same size either way."""
    server = listening_process(b.stack.roles[Role.FRACTURE].port)
    picked = [xrays[i % len(xrays)] for i in range(RESIZE_REQUESTS)]
    started = time.perf_counter()
    small = [await asyncio.to_thread(resized_png, image, side) for image in picked]
    resize_ms = (time.perf_counter() - started) * 1000 / len(picked)
    variants = {"original_jpeg": (picked, "image/jpeg"), "resized_png": (small, "image/png")}
    rounds = []
    for _ in range(ROUNDS):
        measured = {"resize_in_process_ms": resize_ms}
        for name, (chosen, mime) in variants.items():
            before = cpu_seconds(server)
            await timed_batch([lambda x=x, mime=mime: b.fracture(x, mime) for x in chosen], 8)
            measured[f"{name}_cpu_s_per_request"] = (cpu_seconds(server) - before) / len(chosen)
        rounds.append(measured)
    return rounds
