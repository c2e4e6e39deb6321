"""Load test for a running gateway, with the official openai client.

    .venv/bin/python -m scripts.loadtest --url http://127.0.0.1:8080 --concurrency 1 4 16 --requests 32 \\
        --mix cxr=2,chat=1,stream=1 --output bench/results/loadtest.json --plot bench/results/loadtest.png

Each concurrency level sends a bounded number of requests (`--requests`) or
runs for a bounded time (`--duration`), whichever the caller gives, and always
stops by itself. That is a closed loop: a slow answer delays the next request.

Open loop (`--rates 0.1 0.2 0.4 --duration 60 --slo-p95-ms 15000`): requests arrive
by a Poisson process at each mean rate (requests/s) for `--duration` seconds,
each sent at its scheduled time whatever is still in flight, its latency measured
from that scheduled time (no coordinated omission: a stalled server shows as the
latency its callers would see). Prints the highest rate whose p95 stays within
the objective with no error, at it and every rate below it. Request kinds: `cxr` (the cxr-report pipeline on the packaged
X-rays), `chat` (pass-through to the report LLM), `stream` (the same, streamed;
time to first token is measured). Reports throughput, p50/p95/p99 latency,
TTFT and errors by type; writes JSON and a PNG plot. Traffic goes only to
loopback addresses.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import ipaddress
import itertools
import json
import random
import statistics
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import openai

from services.contract.paths import REPO_ROOT

SAMPLES = REPO_ROOT / "models" / "samples"
KINDS = ("cxr", "chat", "stream")


@dataclass
class Outcome:
    kind: str
    ok: bool
    latency_s: float
    ttft_s: float | None = None
    error: str | None = None
    cxr_status: str | None = None


@dataclass
class LevelResult:
    concurrency: int
    requests: int
    elapsed_s: float
    throughput_rps: float
    latency_ms: dict[str, float]
    ttft_ms: dict[str, float]
    errors: dict[str, int]
    by_kind: dict[str, int] = field(default_factory=dict)


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000

    return {"p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99), "mean": statistics.fmean(ordered) * 1000}


@dataclass
class RateResult:
    rate_rps: float  # offered: the Poisson process's mean arrival rate
    requests: int
    elapsed_s: float  # from the first scheduled arrival to the last answer
    throughput_rps: float
    latency_ms: dict[str, float]  # from each request's scheduled send time
    send_lag_ms: dict[str, float]  # how late the harness itself sent: near 0, or it measures itself
    errors: dict[str, int]


def require_loopback(url: str) -> None:
    host = urlparse(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SystemExit(f"refusing to load-test {host!r}: only loopback addresses are allowed")


def parse_mix(text: str) -> list[str]:
    weights = {kind: int(weight) for kind, weight in (part.split("=") for part in text.split(","))}
    unknown = set(weights) - set(KINDS)
    if unknown:
        raise SystemExit(f"unknown request kinds in --mix: {', '.join(sorted(unknown))}")
    return [kind for kind, weight in weights.items() for _ in range(weight)]


class Workload:
    """Builds and sends one request of a kind; knows the model names and the sample images."""

    def __init__(self, client: openai.AsyncOpenAI, chat_model: str, max_tokens: int) -> None:
        self.client = client
        self.chat_model = chat_model
        self.max_tokens = max_tokens
        images = sorted(SAMPLES.glob("*.jpeg"))
        self.images = [f"data:image/jpeg;base64,{base64.b64encode(p.read_bytes()).decode()}" for p in images]
        self._counter = itertools.count()

    def _xray_messages(self) -> list[dict]:
        image = self.images[next(self._counter) % len(self.images)]
        return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": image}}]}]

    def _chat_messages(self) -> list[dict]:
        return [{"role": "user", "content": f"Summarise chest X-ray report number {next(self._counter)} in one line."}]

    async def send(self, kind: str, scheduled: float | None = None) -> Outcome:
        """One request; its latency counts from `scheduled` (a perf_counter time) where given, else from now."""
        started = time.perf_counter() if scheduled is None else scheduled
        try:
            if kind == "cxr":
                completion = await self.client.chat.completions.create(model="cxr-report", messages=self._xray_messages())
                cxr = completion.model_extra.get("cxr") or {}
                ok = bool(completion.choices[0].message.content) and cxr.get("status") in ("complete", "partial")
                return Outcome(
                    kind,
                    ok,
                    time.perf_counter() - started,
                    cxr_status=cxr.get("status"),
                    error=None if ok else "malformed_response",
                )
            if kind == "chat":
                completion = await self.client.chat.completions.create(
                    model=self.chat_model, messages=self._chat_messages(), max_tokens=self.max_tokens
                )
                ok = bool(completion.choices and completion.choices[0].message.content is not None)
                return Outcome(kind, ok, time.perf_counter() - started, error=None if ok else "malformed_response")
            return await self._stream(started)
        except openai.APIStatusError as error:
            return Outcome(kind, False, time.perf_counter() - started, error=f"http_{error.status_code}")
        except openai.APIError as error:
            return Outcome(kind, False, time.perf_counter() - started, error=type(error).__name__)

    async def _stream(self, started: float) -> Outcome:
        ttft = None
        chunks = 0
        stream = await self.client.chat.completions.create(
            model=self.chat_model, messages=self._chat_messages(), max_tokens=self.max_tokens, stream=True
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                chunks += 1
                ttft = ttft if ttft is not None else time.perf_counter() - started
        ok = chunks > 0
        return Outcome("stream", ok, time.perf_counter() - started, ttft_s=ttft, error=None if ok else "empty_stream")


async def run_level(
    workload: Workload, kinds: list[str], concurrency: int, requests: int | None, duration_s: float | None
) -> tuple[LevelResult, list[Outcome]]:
    outcomes: list[Outcome] = []
    plan = itertools.cycle(kinds)
    deadline = time.perf_counter() + duration_s if duration_s else None
    budget = itertools.count() if requests is None else iter(range(requests))

    async def worker() -> None:
        for _ in budget:
            if deadline and time.perf_counter() >= deadline:
                return
            outcomes.append(await workload.send(next(plan)))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    good = [o for o in outcomes if o.ok]
    result = LevelResult(
        concurrency=concurrency,
        requests=len(outcomes),
        elapsed_s=elapsed,
        throughput_rps=len(good) / elapsed if elapsed else 0.0,
        latency_ms=percentiles([o.latency_s for o in good]),
        ttft_ms=percentiles([o.ttft_s for o in good if o.ttft_s is not None]),
        errors=dict(Counter(o.error for o in outcomes if not o.ok)),
        by_kind=dict(Counter(o.kind for o in outcomes)),
    )
    return result, outcomes


def arrivals(rate_rps: float, duration_s: float, rng: random.Random) -> list[float]:
    """A Poisson process's arrival times within `duration_s`: exponential gaps of mean 1 / rate."""
    times, at = [], rng.expovariate(rate_rps)
    while at < duration_s:
        times.append(at)
        at += rng.expovariate(rate_rps)
    return times


async def run_rate(workload: Workload, kinds: list[str], rate_rps: float, duration_s: float, seed: int) -> RateResult:
    """Open loop: every request sent at its scheduled arrival, whatever is still in flight."""
    plan = itertools.cycle(kinds)
    schedule = arrivals(rate_rps, duration_s, random.Random(seed))
    lags: list[float] = []
    start = time.perf_counter()

    async def one(at: float, kind: str) -> Outcome:
        await asyncio.sleep(max(0.0, start + at - time.perf_counter()))
        lags.append(time.perf_counter() - (start + at))
        return await workload.send(kind, scheduled=start + at)

    outcomes = await asyncio.gather(*(one(at, next(plan)) for at in schedule))
    elapsed = time.perf_counter() - start - (schedule[0] if schedule else 0.0)
    good = [o for o in outcomes if o.ok]
    return RateResult(
        rate_rps=rate_rps,
        requests=len(outcomes),
        elapsed_s=elapsed,
        throughput_rps=len(good) / elapsed if elapsed > 0 else 0.0,
        latency_ms=percentiles([o.latency_s for o in good]),
        send_lag_ms=percentiles(lags),
        errors=dict(Counter(o.error for o in outcomes if not o.ok)),
    )


def sustainable(results: list[RateResult], slo_p95_ms: float) -> float | None:
    """The highest rate whose p95 is within the objective without an error, as is every lower rate."""
    best = None
    for result in sorted(results, key=lambda r: r.rate_rps):
        if result.errors or not result.latency_ms or result.latency_ms["p95"] > slo_p95_ms:
            break
        best = result.rate_rps
    return best


def _save(figure: Any, title: str, path: Path) -> None:
    import matplotlib.pyplot as plt

    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_open_loop(results: list[RateResult], path: Path, slo_p95_ms: float) -> None:
    """Latency percentiles and answered throughput against the offered rate, the objective marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [r.rate_rps for r in results]
    figure, (latency_axis, throughput_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for key in ("p50", "p95", "p99"):
        latency_axis.plot(rates, [r.latency_ms.get(key, 0) / 1000 for r in results], marker="o", label=key)
    latency_axis.axhline(slo_p95_ms / 1000, color="grey", linestyle="--", label="p95 objective")
    latency_axis.set(xlabel="offered rate (requests/s, Poisson)", ylabel="latency from scheduled send (s)", title="Latency")
    latency_axis.legend()
    throughput_axis.plot(rates, [r.throughput_rps for r in results], marker="o", label="answered")
    throughput_axis.plot(rates, rates, color="grey", linestyle=":", label="offered")
    throughput_axis.set(xlabel="offered rate (requests/s)", ylabel="requests/s", title="Throughput")
    throughput_axis.legend()
    _save(figure, "cxr-serve open-loop load (cpu profile, stand-in models)", path)


def plot(levels: list[LevelResult], path: Path, knee: int | None = None) -> None:
    """Latency percentiles and throughput against concurrency; `knee`, where given, marked on both."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    concurrency = [level.concurrency for level in levels]
    figure, (latency_axis, throughput_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for key in ("p50", "p95", "p99"):
        latency_axis.plot(concurrency, [level.latency_ms.get(key, 0) / 1000 for level in levels], marker="o", label=key)
    latency_axis.set(xlabel="concurrency", ylabel="latency (s)", title="Latency", xscale="log", xticks=concurrency)
    latency_axis.set_xticklabels(concurrency)
    latency_axis.legend()
    throughput_axis.plot(concurrency, [level.throughput_rps for level in levels], marker="o")
    throughput_axis.set(xlabel="concurrency", ylabel="requests/s", title="Throughput", xscale="log", xticks=concurrency)
    throughput_axis.set_xticklabels(concurrency)
    if knee is not None:
        for axis in (latency_axis, throughput_axis):
            axis.axvline(knee, color="grey", linestyle="--", label=f"knee (c={knee})")
        throughput_axis.legend()
    _save(figure, "cxr-serve gateway load test (cpu profile, stand-in models)", path)


async def load_test(
    url: str,
    api_key: str,
    levels: list[int],
    kinds: list[str],
    requests: int | None,
    duration_s: float | None,
    chat_model: str,
    max_tokens: int,
) -> list[LevelResult]:
    require_loopback(url)
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0, timeout=900)
    workload = Workload(client, chat_model, max_tokens)
    results = []
    for concurrency in levels:
        result, _ = await run_level(workload, kinds, concurrency, requests, duration_s)
        results.append(result)
        print(
            f"c={concurrency:<3} {result.requests} requests in {result.elapsed_s:.1f} s: "
            f"{result.throughput_rps:.2f} req/s, p50 {result.latency_ms.get('p50', 0):.0f} ms, "
            f"p95 {result.latency_ms.get('p95', 0):.0f} ms, errors {result.errors or 'none'}",
            flush=True,
        )
    await client.close()
    return results


async def open_loop(
    url: str, api_key: str, rates: list[float], kinds: list[str], duration_s: float, seed: int, max_tokens: int, chat_model: str
) -> list[RateResult]:
    require_loopback(url)
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0, timeout=900)
    workload = Workload(client, chat_model, max_tokens)
    results = []
    for index, rate in enumerate(rates):
        result = await run_rate(workload, kinds, rate, duration_s, seed + index)
        results.append(result)
        print(
            f"{rate:.3f} req/s offered: {result.requests} requests, {result.throughput_rps:.3f} req/s answered, "
            f"p50 {result.latency_ms.get('p50', 0):.0f} ms, p95 {result.latency_ms.get('p95', 0):.0f} ms, "
            f"errors {result.errors or 'none'}",
            flush=True,
        )
    await client.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--api-key", default="unused")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--rates", type=float, nargs="+", help="open loop: Poisson arrivals at these requests/s")
    parser.add_argument("--slo-p95-ms", type=float, default=15000, help="open loop: the p95 objective")
    parser.add_argument("--seed", type=int, default=1, help="open loop: the arrivals' random seed")
    bound = parser.add_mutually_exclusive_group()
    bound.add_argument("--requests", type=int, help="requests per concurrency level (default 32)")
    bound.add_argument("--duration", type=float, help="seconds per concurrency level")
    parser.add_argument("--mix", default="cxr=2,chat=1,stream=1", help="weights of cxr, chat and stream requests")
    parser.add_argument("--chat-model", default="report-llm")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args(argv)
    if args.rates:
        return _open_loop_main(args)
    requests = args.requests if args.requests or args.duration else 32
    results = asyncio.run(
        load_test(
            args.url,
            args.api_key,
            args.concurrency,
            parse_mix(args.mix),
            requests,
            args.duration,
            args.chat_model,
            args.max_tokens,
        )
    )
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(
            json.dumps({"command": " ".join(sys.argv), "levels": [asdict(r) for r in results]}, indent=2) + "\n"
        )
    if args.plot:
        plot(results, args.plot)
    return 1 if any(r.errors for r in results) else 0


def _open_loop_main(args: argparse.Namespace) -> int:
    duration = args.duration or 60.0
    kinds = parse_mix(args.mix)
    results = asyncio.run(
        open_loop(args.url, args.api_key, args.rates, kinds, duration, args.seed, args.max_tokens, args.chat_model)
    )
    best = sustainable(results, args.slo_p95_ms)
    print(f"highest sustainable rate at p95 <= {args.slo_p95_ms:.0f} ms: {best if best is not None else 'none measured'}")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        report = {"command": " ".join(sys.argv), "slo_p95_ms": args.slo_p95_ms, "sustainable_rps": best}
        args.output.write_text(json.dumps({**report, "rates": [asdict(r) for r in results]}, indent=2) + "\n")
    if args.plot:
        plot_open_loop(results, args.plot, args.slo_p95_ms)
    return 0 if best is not None else 1


if __name__ == "__main__":
    sys.exit(main())
