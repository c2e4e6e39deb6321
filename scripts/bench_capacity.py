"""Open-loop capacity of cxr-report: `python -m scripts.bench_capacity` starts the cpu stack (as `make bench`
does: its limits, its answer lengths) and offers cxr-report requests by a Poisson process at each rate in turn
(scripts/loadtest.py `run_rate`: each request sent at its scheduled time, its latency from that time), then
prints p50 / p95 / p99 per rate and the highest rate whose p95 stays within the objective with no error.
Writes bench/results/capacity.json and docs/img/open-loop.png (docs/performance.md shows it beside the
closed-loop curve of `make bench`). A benchmark, never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import openai

from scripts import loadtest
from scripts.benchlib import OUTPUT_TOKENS, machine, running_stack
from services.contract.paths import REPO_ROOT

RESULTS = REPO_ROOT / "bench" / "results" / "capacity.json"
PLOT = REPO_ROOT / "docs" / "img" / "open-loop.png"
LOGS = REPO_ROOT / "logs" / "bench-capacity"
RATES = [0.2, 0.4, 0.6, 0.8]  # requests/s: make bench's closed loop saturates near 0.4-0.5 on 2 cores
# The objective: about three times an idle pipeline's p50 on this machine (make bench: c=1, ~5 s).
SLO_P95_MS = 15000.0


async def measure(gateway: str, rates: list[float], duration_s: float, seed: int) -> list[loadtest.RateResult]:
    client = openai.AsyncOpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0, timeout=900)
    workload = loadtest.Workload(client, "report-llm", OUTPUT_TOKENS["report"])
    for _ in range(2):  # warm-up, not measured
        await workload.send("cxr")
    results = []
    for index, rate in enumerate(rates):
        results.append(await loadtest.run_rate(workload, ["cxr"], rate, duration_s, seed + index))
        print(f"{rate} req/s: {results[-1].latency_ms} errors {results[-1].errors}", flush=True)
    await client.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=RATES)
    parser.add_argument("--duration-s", type=float, default=60.0, help="seconds of arrivals per rate")
    parser.add_argument("--slo-p95-ms", type=float, default=SLO_P95_MS)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--plot", type=Path, default=PLOT)
    args = parser.parse_args(argv)
    started = time.monotonic()
    with running_stack(LOGS) as stack:
        gateway = f"http://127.0.0.1:{stack.gateway.port}"
        results = asyncio.run(measure(gateway, args.rates, args.duration_s, args.seed))
    best = loadtest.sustainable(results, args.slo_p95_ms)
    report = {
        "machine": machine(),
        "command": "python -m scripts.bench_capacity",
        "elapsed_s": round(time.monotonic() - started),
        "output_tokens": OUTPUT_TOKENS,
        "duration_s_per_rate": args.duration_s,
        "slo_p95_ms": args.slo_p95_ms,
        "sustainable_rps": best,
        "rates": [asdict(r) for r in results],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    loadtest.plot_open_loop(results, args.plot, args.slo_p95_ms)
    print("| offered req/s | requests | answered req/s | p50 ms | p95 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        ms = r.latency_ms
        row = [r.rate_rps, r.requests, f"{r.throughput_rps:.3f}", *(f"{ms.get(k, 0):.0f}" for k in ("p50", "p95", "p99"))]
        print("| " + " | ".join(map(str, row)) + f" | {r.errors or 0} |")
    print(f"highest sustainable rate at p95 <= {args.slo_p95_ms:.0f} ms: {best} req/s; whole run {report['elapsed_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
