"""Classifier benchmark: the worker over HTTP vs raw ONNX Runtime vs the seeds' one-at-a-time design.

    .venv/bin/python -m scripts.bench_classifier [--requests 96] [--output bench/results/classifier.json]

All three run in one process tree, one after another on the same machine, so
their ratios are comparable even where absolute times drift:
  1. the worker (`python -m services.classifier`, started here) over HTTP at concurrency 1, 8 and 32,
     JPEG bytes in, as a client sends them;
  2. raw in-process ONNX Runtime on preprocessed tensors at batch sizes 1, 8 and 32 (best kept);
  3. a naive baseline of the seeds' design: per request decode, preprocess and one Keras forward pass.
Targets (issue 4): worker at concurrency 32 >= 0.85x raw ONNX Runtime; worker p50 at concurrency 1
within 5 ms of one raw batch-1 inference.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from scripts.benchlib import machine, markdown_table, target
from scripts.launcher.process import free_port
from services.classifier.model import OnnxClassifier
from services.contract.classifier_model import ModelMetadata
from services.contract.images import prepare
from services.contract.paths import REPO_ROOT

MODEL = REPO_ROOT / "models" / "pneumonia-classifier" / "model.onnx"
SAMPLES = REPO_ROOT / "models" / "samples"
MAX_PIXELS = 40_000_000


def start_worker(port: int, threads: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "CLASSIFIER_MODEL_PATH": str(MODEL),
        "CLASSIFIER_PORT": str(port),
        "CLASSIFIER_INTRA_OP_THREADS": str(threads),
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "services.classifier"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    for _ in range(240):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                return worker
        except httpx.HTTPError:
            time.sleep(0.25)
    worker.kill()
    raise RuntimeError("worker did not start")


async def http_level(url: str, images: list[bytes], concurrency: int, requests: int) -> dict:
    latencies: list[float] = []
    semaphore = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=httpx.Limits(max_connections=concurrency)) as client:

        async def one(i: int) -> None:
            async with semaphore:
                started = time.perf_counter()
                response = await client.post("/classify", content=images[i % len(images)])
                response.raise_for_status()
                latencies.append(time.perf_counter() - started)

        await one(0)  # warm-up
        latencies.clear()
        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(requests)))
        elapsed = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "images_per_s": requests / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p95_ms": float(np.percentile(latencies, 95) * 1000),
    }


def raw_onnxruntime(tensors: np.ndarray, threads: int, requests: int) -> dict:
    model = OnnxClassifier(MODEL, ("CPUExecutionProvider",), threads, spin_wait=True)  # alone on the cores: its best
    results = {}
    for batch in (1, 8, 32):
        rows = np.concatenate([tensors] * (batch // len(tensors) + 1))[:batch]
        model.run(rows)  # warm-up
        runs = max(1, requests // batch)
        started = time.perf_counter()
        for _ in range(runs):
            model.run(rows)
        results[batch] = runs * batch / (time.perf_counter() - started)
    single = []
    for i in range(20):
        started = time.perf_counter()
        model.run(tensors[i % len(tensors)][np.newaxis])
        single.append(time.perf_counter() - started)
    return {
        "images_per_s_by_batch": results,
        "best_images_per_s": max(results.values()),
        "single_inference_p50_ms": statistics.median(single) * 1000,
    }


def in_process_end_to_end(images: list[bytes], threads: int, batch: int = 32, rounds: int = 3) -> dict:
    """Decode and preprocess in a 2-thread pool, then one batched run: the worker's work without HTTP."""
    from concurrent.futures import ThreadPoolExecutor

    model = OnnxClassifier(MODEL, ("CPUExecutionProvider",), threads, spin_wait=True)  # alone on the cores: its best
    spec = model.metadata.input
    chosen = [images[i % len(images)] for i in range(batch)]
    decode_times = []
    for image in images:
        started = time.perf_counter()
        prepare(image, spec, MAX_PIXELS)
        decode_times.append(time.perf_counter() - started)
    with ThreadPoolExecutor(2) as pool:
        started = time.perf_counter()
        for _ in range(rounds):
            model.run(np.stack(list(pool.map(lambda data: prepare(data, spec, MAX_PIXELS), chosen))))
        elapsed = time.perf_counter() - started
    return {"images_per_s": rounds * batch / elapsed, "decode_preprocess_p50_ms": statistics.median(decode_times) * 1000}


def naive_seed_baseline(images: list[bytes], requests: int) -> dict:
    """The seeds' design: for each request, decode and preprocess, then one framework forward pass."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras
    import torch

    from scripts.modelbuild import packages

    package = packages.fetch("pneumonia-model-package", REPO_ROOT / "models" / ".downloads")
    model = keras.saving.load_model(package.path("keras"), compile=False)
    spec = ModelMetadata.read(MODEL).input
    count = min(requests, 32)
    with torch.no_grad():
        model(torch.from_numpy(prepare(images[0], spec, MAX_PIXELS)[np.newaxis]), training=False)
        started = time.perf_counter()
        for i in range(count):
            model(torch.from_numpy(prepare(images[i % len(images)], spec, MAX_PIXELS)[np.newaxis]), training=False)
    return {"images_per_s": count / (time.perf_counter() - started), "requests": count}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=96)
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads for worker and raw (0: all)")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "bench" / "results" / "classifier.json")
    args = parser.parse_args(argv)
    images = [p.read_bytes() for p in sorted(SAMPLES.glob("*.jpeg"))]
    spec = ModelMetadata.read(MODEL).input
    tensors = np.stack([prepare(image, spec, MAX_PIXELS) for image in images])

    port = free_port()
    worker = start_worker(port, args.threads)
    try:
        http = [asyncio.run(http_level(f"http://127.0.0.1:{port}", images, c, args.requests)) for c in (1, 8, 32)]
    finally:
        worker.terminate()
        worker.wait()
    raw = raw_onnxruntime(tensors, args.threads, args.requests)
    end_to_end = in_process_end_to_end(images, args.threads)
    naive = naive_seed_baseline(images, args.requests)

    by_concurrency = {level["concurrency"]: level for level in http}
    targets = [
        target(
            "worker c=32 / raw ONNX Runtime best batch",
            by_concurrency[32]["images_per_s"] / raw["best_images_per_s"],
            0.85,
            "ratio",
        ),
        target(
            "worker p50 at c=1 minus one raw inference",
            by_concurrency[1]["p50_ms"] - raw["single_inference_p50_ms"],
            5.0,
            "ms",
            higher_is_better=False,
        ),
    ]
    report = {
        "machine": machine(),
        "command": "python -m scripts.bench_classifier " + " ".join(argv or sys.argv[1:]),
        "raw": {"worker_http": http, "onnxruntime": raw, "in_process_decode_and_infer": end_to_end, "naive_seed_baseline": naive},
        "ratios": {
            "worker_c32_vs_naive": by_concurrency[32]["images_per_s"] / naive["images_per_s"],
            "worker_c32_vs_in_process_decode_and_infer": by_concurrency[32]["images_per_s"] / end_to_end["images_per_s"],
            "worker_p50_c1_minus_raw_inference_and_decode_ms": by_concurrency[1]["p50_ms"]
            - raw["single_inference_p50_ms"]
            - end_to_end["decode_preprocess_p50_ms"],
        },
        "targets": targets,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print("| measurement | images/s | p50 ms |\n|---|---|---|")
    for level in http:
        print(f"| worker over HTTP, concurrency {level['concurrency']} | {level['images_per_s']:.1f} | {level['p50_ms']:.1f} |")
    for batch, rate in raw["images_per_s_by_batch"].items():
        print(f"| raw ONNX Runtime, batch {batch} | {rate:.1f} | |")
    print(f"| raw ONNX Runtime, one batch-1 inference | | {raw['single_inference_p50_ms']:.1f} |")
    print(f"| in-process decode + preprocess (one image) | | {end_to_end['decode_preprocess_p50_ms']:.1f} |")
    print(f"| in-process decode (2 threads) + batch-32 inference | {end_to_end['images_per_s']:.1f} | |")
    print(f"| naive seed baseline (Keras, one at a time) | {naive['images_per_s']:.1f} | |")
    for name, value in report["ratios"].items():
        print(f"{name}: {value:.2f}")
    print(markdown_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
