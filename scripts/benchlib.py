"""What the benchmark scripts share: a target entry as bench/results/*.json record it, and its table."""

from __future__ import annotations


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


def markdown_table(report: dict) -> str:
    """The targets as the README shows them."""
    rows = ["| target | measured | goal | result |", "|---|---|---|---|"]
    for t in report["targets"]:
        verdict = "not run" if t["pass"] is None else ("PASS" if t["pass"] else "FALL SHORT")
        rows.append(f"| {t['name']} | {t['measured']} | {t['direction']} {t['target']} {t['unit']} | {verdict} |")
    return "\n".join(rows)
