"""vLLM against ChexFract in `transformers` on the same cores: `python -m scripts.bench_vlm_baseline`.

`make bench` compares the stack's ChexFract server (its engine bound to one core, so that two vLLM servers
fit on two) with `transformers` given both cores and the servers stopped. Here each side has the same cores
and the machine to itself, in turn:
- vLLM: the fracture server alone, as the cpu profile runs it (deploy/models.yaml) but for its engine bound
  to both cores (VLLM_CPU_OMP_THREADS_BIND=0-1) and its caches off (NO_CACHES: the rounds repeat images, and
  transformers keeps nothing between calls), at c=1 (one request at a time) and c=16 (16 at once);
- transformers: one image at a time (c=1) and a padded batch of 16 (`generate` on 16 at once, its best way to
  serve 16 requests), on 1 and 2 threads; the better thread count by median is the one compared, and named.
The same images, prompt and sampling (scripts/bench/calls.py, baselines.py), `make bench`'s 16 output tokens.
Each figure is the median of ROUNDS rounds. Writes bench/results/vlm_baseline.json. A benchmark, never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import httpx

from gateway.backends.calls import Sampling
from gateway.clinical.content import load as load_clinical
from scripts.bench.baselines import THREADS, TransformersVlm
from scripts.bench.calls import Backends, images, timed_batch
from scripts.bench.phases import ROUNDS
from scripts.benchlib import OUTPUT_TOKENS, machine
from scripts.launcher import config, supervisor
from scripts.launcher.commands import service_commands
from scripts.launcher.process import port_overrides
from services.contract.paths import REPO_ROOT
from services.contract.roles import Role

RESULTS = REPO_ROOT / "bench" / "results" / "vlm_baseline.json"
LOGS = REPO_ROOT / "logs" / "bench-vlm-baseline"
BOTH_CORES = "0-1"
LEVELS = {1: 4, 16: 16}  # concurrency: requests per round
# The rounds repeat the 16 sample X-rays; transformers keeps nothing between calls, so neither may vLLM: no
# prefix cache (it would skip a repeated image's prefill) and no cache of processed images.
NO_CACHES = ["--no-enable-prefix-caching", "--mm-processor-cache-gb", "0"]


async def _vllm_rounds(stack: config.StackConfig, xrays: list[bytes]) -> list[dict]:
    async with httpx.AsyncClient(timeout=900) as client:
        b = Backends(stack, client, OUTPUT_TOKENS)
        await timed_batch([lambda x=x: b.fracture(x) for x in xrays[:4]], 4)  # warm-up
        rounds = []
        for _ in range(ROUNDS):
            measured = {}
            for concurrency, requests in LEVELS.items():
                calls = [lambda i=i: b.fracture(xrays[i % len(xrays)]) for i in range(requests)]
                measured[f"c{concurrency}"] = await timed_batch(calls, concurrency)
            rounds.append(measured)
        return rounds


def vllm_side(xrays: list[bytes]) -> list[dict]:
    """The fracture server alone, its engine on both cores."""
    stack = config.load("cpu", env=port_overrides())
    command = next(c for c in service_commands(stack) if c.name == f"vllm-{Role.FRACTURE.value}")
    env = {**command.env, "VLLM_CPU_OMP_THREADS_BIND": BOTH_CORES}
    command = dataclasses.replace(command, argv=[*command.argv, *NO_CACHES], env=env)
    server = supervisor.start(command, LOGS)
    try:
        supervisor.wait_healthy([server], 900, lambda _: None)
        return asyncio.run(_vllm_rounds(stack, xrays))
    finally:
        supervisor.stop([server])


def transformers_side(xrays: list[bytes]) -> dict:
    """c=1 as batches of one, c=16 as one batch of 16, on each thread count, alternating within each round."""
    defaults = config.load("cpu").sampling[Role.FRACTURE]
    sampling = Sampling(OUTPUT_TOKENS[Role.FRACTURE.value], temperature=defaults.temperature, top_p=defaults.top_p)
    vlm = TransformersVlm(load_clinical().fracture_prompt, sampling)
    vlm.run(THREADS[-1], xrays[:1])  # one-time set-up, not measured
    rounds = []
    for _ in range(ROUNDS):
        measured = {}
        for concurrency, requests in LEVELS.items():
            picked = [xrays[i % len(xrays)] for i in range(requests)]
            for threads in THREADS:
                measured[f"c{concurrency}_{threads}_threads"] = vlm.run(threads, picked, batch=concurrency)
        rounds.append(measured)
    return {"rounds": rounds}


def _median(rounds: list[dict], key: str) -> float:
    return statistics.median(r[key]["throughput_rps"] for r in rounds)


def summary(vllm: list[dict], in_process: dict) -> dict:
    compared = {}
    for concurrency in LEVELS:
        options = {threads: _median(in_process["rounds"], f"c{concurrency}_{threads}_threads") for threads in THREADS}
        best = max(options, key=options.__getitem__)
        ratios = [
            v[f"c{concurrency}"]["throughput_rps"] / t[f"c{concurrency}_{best}_threads"]["throughput_rps"]
            for v, t in zip(vllm, in_process["rounds"], strict=True)
        ]
        compared[f"c{concurrency}"] = {
            "vllm_rps": _median(vllm, f"c{concurrency}"),
            "transformers_best": f"batch {concurrency}, {best} threads",
            "transformers_rps": options[best],
            "ratio_median": statistics.median(ratios),
            "ratio_runs": ratios,
        }
    return compared


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started = time.monotonic()
    xrays = images()
    vllm = vllm_side(xrays)
    in_process = transformers_side(xrays)
    report = {
        "machine": machine(),
        "command": "python -m scripts.bench_vlm_baseline",
        "elapsed_s": round(time.monotonic() - started),
        "output_tokens": OUTPUT_TOKENS[Role.FRACTURE.value],
        "vllm": {"engine_cores": BOTH_CORES, "rounds": vllm},
        "transformers": in_process,
        "summary": summary(vllm, in_process),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    for level, figures in report["summary"].items():
        print(
            f"{level}: vLLM {figures['vllm_rps']:.3f} req/s, transformers ({figures['transformers_best']}) "
            f"{figures['transformers_rps']:.3f} req/s: {figures['ratio_median']:.2f}x "
            f"(runs {', '.join(f'{r:.2f}' for r in figures['ratio_runs'])})"
        )
    print(f"whole run {report['elapsed_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
