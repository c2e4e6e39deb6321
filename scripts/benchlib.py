"""What the benchmark scripts share: target entries as bench/results/*.json record them, their table,
the machine a run was made on, the resident memory of a running service, and the cpu stack started for a run."""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import psutil

from scripts.launcher import config
from scripts.launcher.process import LauncherProcess, port_overrides

# The answers' lengths of every benchmark that starts the stack: short, so that a run fits its budget on 2 cores;
# every side of a comparison generates the same lengths. 32 tokens cut the schema-locked report short, so
# pipeline answers are `partial` (the statuses are recorded).
OUTPUT_TOKENS = {"fracture": 16, "report": 32}


@contextmanager
def running_stack(logs: Path, **gateway: str) -> Iterator[config.StackConfig]:
    """The cpu stack on free ports, as `make run` starts it, its answers OUTPUT_TOKENS long and the gateway's
    other settings `gateway` (GATEWAY_* variables); stopped when the block ends."""
    lengths = {f"GATEWAY_{role.upper()}_MAX_TOKENS": str(tokens) for role, tokens in OUTPUT_TOKENS.items()}
    env = {**port_overrides(), **lengths, **gateway}
    launcher = LauncherProcess(env, logs)
    try:
        launcher.wait_for_line("READY ", 900)
        yield config.load("cpu", env=env)
    finally:
        launcher.stop()


def target(name: str, measured: float | None, goal: float, unit: str, higher_is_better: bool = True) -> dict:
    entry = {
        "name": name,
        "measured": None,
        "target": goal,
        "unit": unit,
        "pass": None,
        "direction": ">=" if higher_is_better else "<=",
    }
    if measured is not None:
        entry["measured"] = round(measured, 3)
        entry["pass"] = measured >= goal if higher_is_better else measured <= goal
    return entry


def target_over_runs(name: str, runs: list[float], goal: float, unit: str, higher_is_better: bool = True) -> dict:
    """A target judged on the median of repeated runs, with the runs and their spread kept beside it."""
    entry = target(name, statistics.median(runs), goal, unit, higher_is_better)
    entry["runs"] = [round(run, 3) for run in runs]
    entry["spread"] = [round(min(runs), 3), round(max(runs), 3)]
    return entry


def straddles(entry: dict) -> dict:
    """A target whose runs fall on both sides of its goal is unresolved on this machine: no pass, no fail by luck."""
    low, high = entry["spread"]
    if low < entry["target"] <= high:
        entry["pass"], entry["unresolved"] = None, True
    return entry


def markdown_table(report: dict) -> str:
    """The targets as docs/performance.md shows them: the median, and the spread of the runs where there were several."""
    rows = ["| target | measured | runs (min-max) | goal | result |", "|---|---|---|---|---|"]
    for t in report["targets"]:
        verdict = "not run" if t["pass"] is None else ("PASS" if t["pass"] else "FALL SHORT")
        if t.get("unresolved"):
            verdict = "UNRESOLVED (its runs straddle the goal)"
        spread = f"{len(t['runs'])} ({t['spread'][0]}-{t['spread'][1]})" if "runs" in t else "1"
        goal = f"{t['direction']} {t['target']} {t['unit']}"
        rows.append(f"| {t['name']} | {t['measured']} | {spread} | {goal} | {verdict} |")
    return "\n".join(rows)


def machine() -> dict:
    """Where a run was made, and with what, so that two runs can be compared."""
    versions = {}
    for package in ("vllm", "torch", "transformers", "onnxruntime", "fastapi", "httpx"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": f"{platform.machine()}, {os.cpu_count()} cores ({platform.processor() or 'unknown model'})",
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "profile": "cpu",
        "versions": versions,
    }


def listening_process(port: int) -> psutil.Process:
    """The process that accepts connections on `port`."""
    listening = psutil.net_connections("tcp")
    (pid,) = {c.pid for c in listening if c.laddr.port == port and c.status == psutil.CONN_LISTEN}
    return psutil.Process(pid)


def resident_mb(process: psutil.Process, with_children: bool = False) -> float:
    """Resident memory of a process (and of its children: a vLLM server's engine runs in one)."""
    processes = [process, *process.children(recursive=True)] if with_children else [process]
    total = 0
    for each in processes:
        try:
            total += each.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 2**20
