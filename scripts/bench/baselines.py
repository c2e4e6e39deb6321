"""What the stack is compared with outside its own servers: ChexFract run by `transformers` in-process (the
seeds' way, in its best configuration found here), and vLLM's own serving benchmark."""

from __future__ import annotations

import contextlib
import io
import statistics
import time
from pathlib import Path

from gateway.backends.calls import Sampling
from scripts.bench.phases import ROUNDS
from services.contract.paths import REPO_ROOT

THREADS = (1, 2)  # torch's default on this machine is 2; one thread measured faster (issue 16)
BASELINE_REQUESTS = 2  # per configuration and round
SERVE_PROMPTS = 8  # per side and round: one per slot at c=8


class TransformersVlm:
    """ChexFract in-process with `transformers`, float32 under `torch.inference_mode`, sampling as the gateway
    asks vLLM to (models.yaml), so that both sides stop at an end token as often."""

    def __init__(self, prompt: str, sampling: Sampling) -> None:
        import torch
        from transformers import AutoProcessor, LlavaForConditionalGeneration

        folder = REPO_ROOT / "models" / "fracture-vlm"
        self.processor = AutoProcessor.from_pretrained(folder)
        self.processor.tokenizer.padding_side = "left"  # a batch generates after its prompts' ends
        self.model = LlavaForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).eval()
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        self.text = self.processor.apply_chat_template(messages, add_generation_prompt=True)
        self.max_tokens = sampling.max_tokens
        greedy = not sampling.temperature  # temperature 0: greedy, as vLLM reads it
        self.sampled: dict[str, object] = {"do_sample": not greedy}
        if not greedy:
            self.sampled["temperature"] = sampling.temperature
        if not greedy and sampling.top_p is not None:
            self.sampled["top_p"] = sampling.top_p

    def run(self, threads: int, images: list[bytes], batch: int = 1) -> dict:
        """`images` through `generate`, `batch` at a time (padded together), on `threads` threads."""
        import torch
        from PIL import Image

        torch.set_num_threads(threads)
        tokens = 0
        started = time.perf_counter()
        for first in range(0, len(images), batch):
            pictures = [Image.open(io.BytesIO(image)).convert("RGB") for image in images[first : first + batch]]
            inputs = self.processor(images=pictures, text=[self.text] * len(pictures), padding=True, return_tensors="pt")
            with torch.inference_mode():
                output = self.model.generate(**inputs, max_new_tokens=self.max_tokens, **self.sampled)
            tokens += (output.shape[1] - inputs["input_ids"].shape[1]) * len(pictures)
        elapsed = time.perf_counter() - started
        return {"requests": len(images), "throughput_rps": len(images) / elapsed, "tokens_per_s": tokens / elapsed}


def transformers_vlm(xrays: list[bytes], prompt: str, sampling: Sampling) -> dict:
    """`generate` one image at a time (batch of one), with 1 and 2 threads alternating in each round; the best
    configuration is the one with the higher median."""
    vlm = TransformersVlm(prompt, sampling)
    vlm.run(THREADS[0], xrays[:1])  # the first generate in a process pays for one-time set-up on any configuration
    rounds = []
    for index in range(ROUNDS):
        images = [xrays[(index * BASELINE_REQUESTS + i) % len(xrays)] for i in range(BASELINE_REQUESTS)]
        rounds.append({f"{threads}_threads": vlm.run(threads, images) for threads in THREADS})
    medians = {name: statistics.median(r[name]["throughput_rps"] for r in rounds) for name in rounds[0]}
    best = max(medians, key=medians.__getitem__)
    configuration = f"batch 1, float32, inference_mode, temperature {sampling.temperature}, top_p {sampling.top_p}"
    return {"configuration": configuration, "rounds": rounds, "best": best}


def vllm_bench_serve(base_url: str, label: str, prompts: int, output_tokens: int) -> dict:
    """vLLM's own serving benchmark (what `vllm bench serve` runs): random 128-token prompts, chat endpoint, c=8."""
    from vllm.benchmarks.serve import add_cli_args
    from vllm.benchmarks.serve import main as serve_main
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser()
    add_cli_args(parser)
    arguments = {
        "--backend": "openai-chat",
        "--endpoint": "/v1/chat/completions",
        "--base-url": base_url,
        "--model": "report-llm",
        "--tokenizer": str(REPO_ROOT / "models" / "report-llm"),
        "--dataset-name": "random",
        "--random-input-len": "128",
        "--random-output-len": str(output_tokens),
        "--num-prompts": str(prompts),
        "--max-concurrency": "8",
        "--label": label,
    }
    args = parser.parse_args([*(part for pair in arguments.items() for part in pair), "--ignore-eos", "--disable-tqdm"])
    result = serve_main(args)
    keys = ("request_throughput", "output_throughput", "median_ttft_ms", "median_tpot_ms", "median_itl_ms", "failed")
    return {key: result.get(key) for key in keys}


def serve_rounds(direct: str, gateway: str, output_tokens: int, logs: Path) -> list[dict]:
    """vLLM's serving benchmark against both sides, each warmed the same way first, then alternating; what it
    prints goes to a log beside the servers' own."""
    sides = {"direct": direct, "gateway": gateway}
    with (logs / "bench-serve.log").open("w") as log, contextlib.redirect_stdout(log):
        for side, url in sides.items():
            vllm_bench_serve(url, f"warm-up {side}", 4, output_tokens)
        return [
            {side: vllm_bench_serve(url, side, SERVE_PROMPTS, output_tokens) for side, url in sides.items()}
            for _ in range(ROUNDS)
        ]
