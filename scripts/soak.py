"""`make bench-soak`: a long run at c=16, then an overload burst, against the cpu-profile stack.

    .venv/bin/python -m scripts.soak [--seconds 300] [--output bench/results/soak.json]

Starts the stack through the launcher (as `make run` does, on free ports, with
the report budget of models.yaml, so every report is whole), then:
  - soak: mixed traffic (cxr-report, pass-through chat, streamed chat) at c=16 for `--seconds`, after a
    minute at c=16 to warm up; errors counted, and the gateway's resident memory read after the first
    requests, at the start and at the end (target: under 10 % growth from start to end: nothing
    accumulates per request);
  - burst: ten times the pipeline's capacity in cxr-report requests at the same instant, each on its
    own connection: only 200, 429 or 503 may come back (admission refuses at once, before any image is
    decoded), and the gateway and every backend must be ready afterwards.
Writes the figures and targets as JSON and prints PASS or FALL SHORT per target.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import httpx

from gateway.settings import ClassifierRole, FractureRole, ReportRole
from scripts import loadtest
from scripts.benchlib import listening_process, machine, markdown_table, resident_mb, target
from scripts.launcher import config
from scripts.launcher.process import LauncherProcess, port_overrides
from services.contract.paths import REPO_ROOT

RESULTS = REPO_ROOT / "bench" / "results"
CHAT_TOKENS = 32
# cxr-report requests the gateway admits at once: the least of GATEWAY_<ROLE>_MAX_CONCURRENCY's defaults
# (a request holds a slot on every backend).
PIPELINE_CAPACITY = min(role.model_fields["max_concurrency"].default for role in (ClassifierRole, FractureRole, ReportRole))
BURST_FACTOR = 10
WARM_UP_S = 60.0


async def soak(stack: config.StackConfig, seconds: float) -> dict:
    gateway = listening_process(stack.gateway.port)
    client = loadtest.openai.AsyncOpenAI(
        base_url=f"http://127.0.0.1:{stack.gateway.port}/v1", api_key="x", max_retries=0, timeout=900
    )
    workload = loadtest.Workload(client, "report-llm", CHAT_TOKENS)
    kinds = ["cxr", "chat", "stream"]
    await loadtest.run_level(workload, kinds, 4, 8, None)  # every path once
    after_first_requests_mb = resident_mb(gateway)
    # A minute at the soak's own concurrency first: the heap grows to hold 16 requests in flight once
    # (images, base64, answers); what the target asks is whether it keeps growing after that.
    await loadtest.run_level(workload, kinds, 16, None, WARM_UP_S)
    start_mb = resident_mb(gateway)
    level, _ = await loadtest.run_level(workload, kinds, 16, None, seconds)
    end_mb = resident_mb(gateway)
    await client.close()
    return {
        "level": asdict(level),
        "gateway_rss_mb_after_first_requests": after_first_requests_mb,
        "gateway_rss_mb_start": start_mb,
        "gateway_rss_mb_end": end_mb,
    }


async def burst(stack: config.StackConfig, count: int) -> dict:
    """`count` cxr-report requests at the same instant, each on its own connection; then /ready."""
    gateway = f"http://127.0.0.1:{stack.gateway.port}"
    samples = sorted((REPO_ROOT / "models" / "samples").glob("*.jpeg"))
    uris = [f"data:image/jpeg;base64,{base64.b64encode(p.read_bytes()).decode()}" for p in samples]
    async with httpx.AsyncClient(timeout=900, limits=httpx.Limits(max_connections=count)) as client:

        async def one(index: int) -> int:
            content = [{"type": "image_url", "image_url": {"url": uris[index % len(uris)]}}]
            body = {"model": "cxr-report", "messages": [{"role": "user", "content": content}]}
            try:
                return (await client.post(f"{gateway}/v1/chat/completions", json=body)).status_code
            except httpx.HTTPError:
                return 0  # no answer at all: counted, and fails the target

        started = time.perf_counter()
        statuses = await asyncio.gather(*(one(i) for i in range(count)))
        elapsed = time.perf_counter() - started
        ready = (await client.get(f"{gateway}/ready")).json()
    counted = {str(status): statuses.count(status) for status in sorted(set(statuses))}
    return {"requests": count, "elapsed_s": elapsed, "statuses": counted, "ready_after": ready}


def targets_from(raw: dict) -> list[dict]:
    level, statuses = raw["soak"]["level"], raw["burst"]["statuses"]
    return [
        target(f"errors in a {raw['seconds']:.0f} s soak at c=16", sum(level["errors"].values()), 0, "errors", False),
        target(
            "gateway resident memory, end / start of the soak",
            raw["soak"]["gateway_rss_mb_end"] / raw["soak"]["gateway_rss_mb_start"],
            1.10,
            "ratio",
            higher_is_better=False,
        ),
        target(
            f"answers other than 200/429/503 to a burst of {BURST_FACTOR}x capacity ({raw['burst']['requests']} at once)",
            sum(n for status, n in statuses.items() if status not in ("200", "429", "503")),
            0,
            "answers",
            higher_is_better=False,
        ),
        target("gateway and every backend ready after the burst", float(raw["burst"]["ready_after"]["ready"]), 1, "(1 = ready)"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="length of the soak at c=16")
    parser.add_argument("--output", type=Path, default=RESULTS / "soak.json")
    args = parser.parse_args(argv)
    env = port_overrides()
    stack = config.load("cpu", env=env)
    launcher = LauncherProcess(env, REPO_ROOT / "logs" / "soak")
    try:
        launcher.wait_for_line("READY ", 900)
        print("stack ready; soaking", flush=True)
        raw = {"seconds": args.seconds, "soak": asyncio.run(soak(stack, args.seconds))}
        print("soak done; bursting", flush=True)
        raw["burst"] = asyncio.run(burst(stack, BURST_FACTOR * PIPELINE_CAPACITY))
    finally:
        launcher.stop()
    report = {
        "machine": machine(),
        "command": f"make bench-soak (python -m scripts.soak --seconds {args.seconds:g})",
        "raw": raw,
        "targets": targets_from(raw),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    for t in report["targets"]:
        print(f"{'PASS' if t['pass'] else 'FALL SHORT':<10} {t['name']}: {t['measured']} (target {t['target']} {t['unit']})")
    print(markdown_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
