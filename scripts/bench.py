"""`make bench`: the stack's performance targets, each measured side by side in one run.

    .venv/bin/python -m scripts.bench [--output bench/results/latest.json]

Starts the cpu-profile stack through the launcher (as `make run` does, on free
ports), then measures, one after another on the same machine:
  - gateway overhead: the same chat requests through the gateway's pass-through and straight to vLLM (c=1, c=16);
  - the pipeline through the gateway (c=1, 4, 16) against a naive sequential baseline of the seeds' design
    (classify, describe fractures, write the report, one request at a time);
  - the fan-out's cost: pipeline latency against max(classifier, VLM) + report, each called alone;
  - the fracture VLM served by vLLM (c=16) against `transformers` `generate` in-process, one image at a time;
  - the pipeline against its slowest stage driven alone with the same requests at c=16;
  - vLLM's own serving benchmark (TTFT, TPOT) through the gateway and directly.
The soak and the overload burst are `make bench-soak` (scripts/soak.py).
Output lengths are shortened (fracture 32 tokens, report 64) so that the run
fits in ~10 minutes on 2 cores; every side of a comparison uses the same ones.
Writes bench/results/latest.json (machine, command, raw figures, targets) and
bench/results/latest.png, and prints PASS or FALL SHORT per target.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path

import httpx

from gateway.backends.calls import Sampling
from gateway.clinical import load as load_clinical
from gateway.clinical.abstention import Assessed
from gateway.pipeline.requests import ReportFacts, fracture_call, report_call
from gateway.protocol import ClassificationResult
from scripts import loadtest
from scripts.benchlib import markdown_table, target
from scripts.launcher import config
from scripts.launcher.process import LauncherProcess, port_overrides
from services.contract.paths import REPO_ROOT
from services.contract.roles import Role

RESULTS = REPO_ROOT / "bench" / "results"
FRACTURE_TOKENS, REPORT_TOKENS, CHAT_TOKENS = 32, 64, 32
# Enough requests at c=16 for the two stages to overlap in steady state, not just one lockstep wave.
PIPELINE_C16 = 48
C1_REQUESTS = 8  # the same 8 X-rays for the pipeline and for each stage alone
BENCH_ENV = {"GATEWAY_FRACTURE_MAX_TOKENS": str(FRACTURE_TOKENS), "GATEWAY_REPORT_MAX_TOKENS": str(REPORT_TOKENS)}


def images() -> list[bytes]:
    return [p.read_bytes() for p in sorted((REPO_ROOT / "models" / "samples").glob("*.jpeg"))]


def uri(image: bytes) -> str:
    return f"data:image/jpeg;base64,{base64.b64encode(image).decode()}"


async def timed_batch(calls: list[Callable[[], Awaitable[object]]], concurrency: int) -> dict:
    """Run the calls with at most `concurrency` in flight: throughput, latencies, errors."""
    semaphore = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    errors = 0

    async def one(call: Callable[[], Awaitable[object]]) -> None:
        nonlocal errors
        async with semaphore:
            started = time.perf_counter()
            try:
                await call()
                latencies.append(time.perf_counter() - started)
            except (httpx.HTTPError, RuntimeError):
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(one(call) for call in calls))
    elapsed = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "requests": len(calls),
        "errors": errors,
        "elapsed_s": elapsed,
        "throughput_rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else None,
    }


class Backends:
    """Direct calls to each backend and to the gateway, with the requests the pipeline itself makes."""

    def __init__(self, stack: config.StackConfig, client: httpx.AsyncClient) -> None:
        self.stack = stack
        self.client = client
        self.gateway = f"http://127.0.0.1:{stack.gateway.port}"
        self.clinical = load_clinical()

    async def post(self, url: str, **kwargs) -> dict:
        response = await self.client.post(url, **kwargs)
        if response.status_code != 200:
            raise RuntimeError(f"{url}: {response.status_code}")
        return response.json()

    async def classify(self, image: bytes) -> dict:
        return await self.post(f"{self.stack.url('classifier')}/classify", content=image)

    def sampling(self, role: Role, max_tokens: int) -> Sampling:
        """What the gateway sends this role (models.yaml's defaults), at the benchmark's length."""
        defaults = self.stack.sampling[role]
        return Sampling(max_tokens=max_tokens, temperature=defaults.temperature, top_p=defaults.top_p)

    async def fracture(self, image: bytes) -> str:
        sampling = self.sampling(Role.FRACTURE, FRACTURE_TOKENS)
        payload = fracture_call("chexfract", self.clinical.fracture_prompt, uri(image), sampling).body()
        answer = await self.post(f"{self.stack.url('fracture')}/v1/chat/completions", json=payload)
        return answer["choices"][0]["message"]["content"]

    async def report(self, cxr: dict) -> str:
        """The report request the pipeline makes for a result `cxr` (same prompt, same length)."""
        facts = ReportFacts(
            language=cxr["language"],
            classification=ClassificationResult(**cxr["classification"]),
            fracture_text=cxr["fracture"]["text"] if cxr["fracture"] else None,
            risk_text=cxr["risk_level"]["text"],
            indication="",
            assessed=[Assessed(**assessment) for assessment in cxr["assessments"]],
        )
        payload = report_call("report-llm", self.clinical, facts, self.sampling(Role.REPORT, REPORT_TOKENS)).body()
        answer = await self.post(f"{self.stack.url('report')}/v1/chat/completions", json=payload)
        return answer["choices"][0]["message"]["content"]

    async def pipeline(self, image: bytes) -> dict:
        body = {
            "model": "cxr-report",
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": uri(image)}}]}],
        }
        return (await self.post(f"{self.gateway}/v1/chat/completions", json=body))["cxr"]

    async def chat(self, base: str, index: int) -> dict:
        payload = {
            "model": "report-llm",
            "max_tokens": CHAT_TOKENS,
            "temperature": 0,
            "messages": [{"role": "user", "content": f"Describe chest X-ray finding number {index}."}],
        }
        return await self.post(f"{base}/v1/chat/completions", json=payload)

    async def naive(self, image: bytes, cxr: dict) -> None:
        """The seeds' design, extended with ChexFract: every stage in turn, nothing in parallel."""
        await self.classify(image)
        await self.fracture(image)
        await self.report(cxr)


async def gateway_overhead(b: Backends) -> dict:
    direct = b.stack.url("report")
    result = {}
    for concurrency, requests in ((1, 8), (16, 32)):
        rounds = {"direct": [], "gateway": []}
        for _ in range(2):  # interleaved rounds, so drift hits both sides alike
            for side, base in (("direct", direct), ("gateway", b.gateway)):
                calls = [lambda i=i, base=base: b.chat(base, i) for i in range(requests // 2)]
                rounds[side].append(await timed_batch(calls, concurrency))
        result[f"c{concurrency}"] = {
            side: {
                "throughput_rps": statistics.fmean(r["throughput_rps"] for r in runs),
                "p50_ms": statistics.fmean(r["p50_ms"] for r in runs),
                "errors": sum(r["errors"] for r in runs),
            }
            for side, runs in rounds.items()
        }
    return result


async def stages_alone(b: Backends, xrays: list[bytes], cxrs: list[dict]) -> dict:
    """Each stage called alone with the pipeline's own requests: at c=1, then the VLM and report LLM at c=16."""
    classifier = await timed_batch([lambda x=x: b.classify(x) for x in xrays[:C1_REQUESTS]], 1)
    fracture = await timed_batch([lambda x=x: b.fracture(x) for x in xrays[:C1_REQUESTS]], 1)
    report = await timed_batch([lambda c=c: b.report(c) for c in cxrs[:C1_REQUESTS]], 1)
    fracture_16 = await timed_batch([lambda i=i: b.fracture(xrays[i % len(xrays)]) for i in range(PIPELINE_C16)], 16)
    report_16 = await timed_batch([lambda i=i: b.report(cxrs[i % len(cxrs)]) for i in range(PIPELINE_C16)], 16)
    return {
        "c1": {"classifier": classifier, "fracture": fracture, "report": report},
        "c16": {"fracture": fracture_16, "report": report_16},
    }


def transformers_vlm_baseline(xrays: list[bytes], threads: int, requests: int = 4) -> dict:
    """ChexFract the seeds' way: transformers `generate` in-process, one image at a time, same folder and prompt."""
    import io

    import torch
    from PIL import Image
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    torch.set_num_threads(threads)
    folder = REPO_ROOT / "models" / "fracture-vlm"
    processor = AutoProcessor.from_pretrained(folder)
    model = LlavaForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).eval()
    prompt = load_clinical().fracture_prompt
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    tokens = 0
    started = time.perf_counter()
    for image in xrays[:requests]:
        inputs = processor(images=Image.open(io.BytesIO(image)).convert("RGB"), text=text, return_tensors="pt")
        with torch.no_grad():
            output = model.generate(**inputs, max_new_tokens=FRACTURE_TOKENS, do_sample=False)
        tokens += output.shape[1] - inputs["input_ids"].shape[1]
    elapsed = time.perf_counter() - started
    return {"requests": requests, "throughput_rps": requests / elapsed, "tokens_per_s": tokens / elapsed}


def vllm_bench_serve(base_url: str, label: str, prompts: int = 32) -> dict:
    """vLLM's own serving benchmark (what `vllm bench serve` runs), random prompts, chat endpoint."""
    from vllm.benchmarks.serve import add_cli_args
    from vllm.benchmarks.serve import main as serve_main
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser()
    add_cli_args(parser)
    args = parser.parse_args(
        [
            "--backend",
            "openai-chat",
            "--endpoint",
            "/v1/chat/completions",
            "--base-url",
            base_url,
            "--model",
            "report-llm",
            "--tokenizer",
            str(REPO_ROOT / "models" / "report-llm"),
            "--dataset-name",
            "random",
            "--random-input-len",
            "128",
            "--random-output-len",
            str(CHAT_TOKENS),
            "--num-prompts",
            "32",
            "--max-concurrency",
            "8",
            "--ignore-eos",
            "--label",
            label,
            "--disable-tqdm",
        ]
    )
    result = serve_main(args)
    keys = ("request_throughput", "output_throughput", "median_ttft_ms", "median_tpot_ms", "median_itl_ms", "failed")
    return {key: result.get(key) for key in keys}


async def measure(stack: config.StackConfig) -> tuple[dict, list]:
    xrays = images()
    async with httpx.AsyncClient(timeout=900, limits=httpx.Limits(max_connections=64)) as client:
        b = Backends(stack, client)
        cxrs = [await b.pipeline(x) for x in xrays[:C1_REQUESTS]]  # warms every backend; the reports to replay
        raw: dict = {"gateway_overhead": await gateway_overhead(b)}
        raw["stages_alone"] = await stages_alone(b, xrays, cxrs)
        raw["naive_sequential"] = await timed_batch([lambda i=i: b.naive(xrays[i], cxrs[i]) for i in range(4)], 1)
        c16 = raw["stages_alone"]["c16"]
        # On one CPU the two stages share the cores, so their CPU times add up: this is the bound there.
        raw["shared_cpu_bound_rps"] = 1 / (1 / c16["fracture"]["throughput_rps"] + 1 / c16["report"]["throughput_rps"])
        openai_client = loadtest.openai.AsyncOpenAI(base_url=f"{b.gateway}/v1", api_key="x", max_retries=0, timeout=900)
        workload = loadtest.Workload(openai_client, "report-llm", CHAT_TOKENS)
        levels = []
        for concurrency, requests in ((1, C1_REQUESTS), (4, 8), (16, PIPELINE_C16)):
            level, _ = await loadtest.run_level(workload, ["cxr"], concurrency, requests, None)
            levels.append(level)
        raw["pipeline"] = [asdict(level) for level in levels]
        await openai_client.close()
    return raw, levels


def targets_from(raw: dict) -> list[dict]:
    overhead = raw["gateway_overhead"]
    alone = raw["stages_alone"]
    pipeline = {level["concurrency"]: level for level in raw["pipeline"]}
    c1 = alone["c1"]
    fan_out_bound = max(c1["classifier"]["p50_ms"], c1["fracture"]["p50_ms"]) + c1["report"]["p50_ms"]
    slowest = min(alone["c16"]["fracture"]["throughput_rps"], alone["c16"]["report"]["throughput_rps"])
    return [
        target(
            "gateway p50 / direct p50 at c=1",
            overhead["c1"]["gateway"]["p50_ms"] / overhead["c1"]["direct"]["p50_ms"],
            1.05,
            "ratio",
            higher_is_better=False,
        ),
        target(
            "gateway throughput / direct at c=16",
            overhead["c16"]["gateway"]["throughput_rps"] / overhead["c16"]["direct"]["throughput_rps"],
            0.95,
            "ratio",
        ),
        target(
            "pipeline c=16 / naive sequential throughput",
            pipeline[16]["throughput_rps"] / raw["naive_sequential"]["throughput_rps"],
            4.0,
            "ratio",
        ),
        target(
            "pipeline p50 at c=1 / (max(classifier, VLM) + report)",
            pipeline[1]["latency_ms"]["p50"] / fan_out_bound,
            1.10,
            "ratio",
            higher_is_better=False,
        ),
        target(
            "vLLM VLM c=16 / transformers one at a time",
            alone["c16"]["fracture"]["throughput_rps"] / raw["transformers_vlm"]["throughput_rps"],
            5.0,
            "ratio",
        ),
        target("pipeline c=16 / slowest stage alone at c=16", pipeline[16]["throughput_rps"] / slowest, 0.8, "ratio"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    parser.add_argument("--table", action="store_true", help="only print the targets of --output as a markdown table")
    args = parser.parse_args(argv)
    if args.table:
        print(markdown_table(json.loads(args.output.read_text())))
        return 0
    env = {**port_overrides(), **BENCH_ENV}
    stack = config.load("cpu", env=env)
    launcher = LauncherProcess(env, REPO_ROOT / "logs" / "bench")
    try:
        launcher.wait_for_line("READY ", 900)
        print("stack ready; measuring", flush=True)
        raw, levels = asyncio.run(measure(stack))
        # The first run in a process is slower whichever side it measures (measured: TTFT 3.4 s vs 0.7 s),
        # so a discarded warm-up run comes first.
        vllm_bench_serve(stack.url("report"), "warm-up", prompts=8)
        raw["vllm_bench_serve"] = {
            "gateway": vllm_bench_serve(f"http://127.0.0.1:{stack.gateway.port}", "gateway"),
            "direct": vllm_bench_serve(stack.url("report"), "direct"),
        }
    finally:
        launcher.stop()
    # With the servers stopped, so the CPU is its own. On both cores (the target's baseline), and on one
    # core, as the cpu profile gives the vLLM engine (VLLM_CPU_OMP_THREADS_BIND): the per-core view.
    raw["transformers_vlm"] = transformers_vlm_baseline(images(), threads=2)
    raw["transformers_vlm_1_thread"] = transformers_vlm_baseline(images(), threads=1)
    targets = targets_from(raw)
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, cpu profile",
        "command": "make bench",
        "output_tokens": {"fracture": FRACTURE_TOKENS, "report": REPORT_TOKENS, "chat": CHAT_TOKENS},
        "raw": raw,
        "targets": targets,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    loadtest.plot(levels, args.output.with_suffix(".png"))
    for t in targets:
        verdict = "NOT RUN" if t["pass"] is None else ("PASS" if t["pass"] else "FALL SHORT")
        print(f"{verdict:<10} {t['name']}: {t['measured']} (target {t['target']} {t['unit']})")
    print(markdown_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
