"""Load test for a running gateway, with the official openai client.

    .venv/bin/python -m scripts.loadtest --url http://127.0.0.1:8080 --concurrency 1 4 16 --requests 32 \\
        --mix cxr=2,chat=1,stream=1 --output bench/results/loadtest.json --plot bench/results/loadtest.png

Each concurrency level sends a bounded number of requests (`--requests`) or
runs for a bounded time (`--duration`), whichever the caller gives, and always
stops by itself. Request kinds: `cxr` (the cxr-report pipeline on the packaged
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
import statistics
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
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

    async def send(self, kind: str) -> Outcome:
        started = time.perf_counter()
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
    figure.suptitle("cxr-serve gateway load test (cpu profile, stand-in models)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--api-key", default="unused")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    bound = parser.add_mutually_exclusive_group()
    bound.add_argument("--requests", type=int, help="requests per concurrency level (default 32)")
    bound.add_argument("--duration", type=float, help="seconds per concurrency level")
    parser.add_argument("--mix", default="cxr=2,chat=1,stream=1", help="weights of cxr, chat and stream requests")
    parser.add_argument("--chat-model", default="report-llm")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
