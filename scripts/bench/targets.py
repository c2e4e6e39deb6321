"""The issue's performance targets, each judged on the median of the rounds' own ratios, and the other
figures an operator reads beside them."""

from __future__ import annotations

import statistics

from scripts.benchlib import straddles, target, target_over_runs

GATEWAY_MEMORY_LIMIT_MB = 300


def shared_device_bound(round_: dict) -> float:
    """Requests/s the pipeline could reach when its two model stages share one device (the CPU here, one GPU in
    the gpu profile): their device times add up, so the bound is 1 / (1/fracture + 1/report), each alone at c=16."""
    fracture, report = round_["fracture_c16"]["throughput_rps"], round_["report_c16"]["throughput_rps"]
    return 1 / (1 / fracture + 1 / report)


def fan_out_bound_ms(round_: dict) -> float:
    """What a perfect fan-out costs at c=1: classifier and VLM in parallel, then the report."""
    alone = round_["alone_c1_ms"]
    return max(alone["classifier"], alone["fracture"]) + alone["report"]


def _ratio(rounds: list[dict], top: str, bottom: str, key: str = "throughput_rps") -> list[float]:
    return [r[top][key] / r[bottom][key] for r in rounds]


def _p50(level: dict) -> float:
    return level["latency_ms"]["p50"]


def targets_from(raw: dict) -> list[dict]:
    """Every target; one whose rounds straddle its goal is unresolved on this machine (benchlib.straddles)."""
    return [straddles(t) if "runs" in t else t for t in _targets(raw)]


def _targets(raw: dict) -> list[dict]:
    overhead, pipeline, added = raw["gateway_overhead"], raw["pipeline_rounds"], raw["added_latency"]
    serve, vlm = raw["vllm_bench_serve"], raw["transformers_vlm"]
    best = vlm["best"]
    return [
        target_over_runs(
            "gateway p50 / direct p50, chat at c=1",
            [_p50(r["gateway_c1"]) / _p50(r["direct_c1"]) for r in overhead],
            1.03,
            "ratio",
            higher_is_better=False,
        ),
        target_over_runs(
            "gateway throughput / direct, chat at c=16", _ratio(overhead, "gateway_c16", "direct_c16"), 0.97, "ratio"
        ),
        target_over_runs(
            "gateway's added latency p50, max_tokens 1, one at a time",
            [r["added_p50_ms"] for r in added["rounds"]],
            2.0,
            "ms",
            higher_is_better=False,
        ),
        target_over_runs(
            "vLLM bench serve through the gateway / direct, requests/s",
            _ratio(serve, "gateway", "direct", "request_throughput"),
            0.95,
            "ratio",
        ),
        target_over_runs(
            "pipeline c=16 / shared-device bound",
            [r["pipeline_c16"]["throughput_rps"] / shared_device_bound(r) for r in pipeline],
            0.9,
            "ratio",
        ),
        target_over_runs("pipeline c=16 / naive sequential", _ratio(pipeline, "pipeline_c16", "naive"), 4.0, "ratio"),
        target_over_runs(
            "pipeline p50 at c=1 / (max(classifier, VLM) + report)",
            [_p50(r["pipeline_c1"]) / fan_out_bound_ms(r) for r in pipeline],
            1.10,
            "ratio",
            higher_is_better=False,
        ),
        target_over_runs(
            f"vLLM VLM c=16 / transformers at its best ({best.replace('_', ' ')})",
            [
                vllm["fracture_c16"]["throughput_rps"] / in_process[best]["throughput_rps"]
                for vllm, in_process in zip(pipeline, vlm["rounds"], strict=True)
            ],
            5.0,
            "ratio",
        ),
        target(
            "gateway resident memory at c=16 (peak)",
            max(r["resident_mb_peak_c16"]["gateway"] for r in pipeline),
            GATEWAY_MEMORY_LIMIT_MB,
            "MB",
            higher_is_better=False,
        ),
    ]


def figures_from(raw: dict) -> dict:
    """Medians of what the targets do not judge: the report's 'other figures'."""
    pipeline, added, serve = raw["pipeline_rounds"], raw["added_latency"], raw["vllm_bench_serve"]
    return {
        "pipeline c=16 / slowest stage alone at c=16": statistics.median(
            r["pipeline_c16"]["throughput_rps"] / min(r["fracture_c16"]["throughput_rps"], r["report_c16"]["throughput_rps"])
            for r in pipeline
        ),
        "gateway's added latency p99 over every round (ms)": added["all_rounds"]["added_p99_ms"],
        **{
            f"bench serve {key} {side}": statistics.median(r[side][key] for r in serve)
            for key in ("median_ttft_ms", "median_tpot_ms", "request_throughput")
            for side in ("gateway", "direct")
        },
        **{
            f"fracture VLM server CPU s per request, {variant}": statistics.median(
                r[f"{variant}_cpu_s_per_request"] for r in raw["resize_effect"]
            )
            for variant in ("original_jpeg", "resized_png")
        },
        "resize to the VLM input in process (ms per image)": raw["resize_effect"][0]["resize_in_process_ms"],
    }
