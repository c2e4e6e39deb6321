"""Where the overhead bench says the added time goes (scripts/bench_gateway_overhead.py `added`): each side's
percentiles less direct's, from the parts phase alone."""

from __future__ import annotations

from scripts.bench_gateway_overhead import TMPFS_SIDE, added


def test_each_side_is_its_percentile_less_directs_in_milliseconds() -> None:
    direct = [0.001 * (i + 1) for i in range(100)]  # 1..100 ms
    raw = {
        "parts": {
            "direct": direct,
            "gateway": [t + 0.003 for t in direct],  # 3 ms more at every percentile
            TMPFS_SIDE: [t + 0.002 for t in direct[:99]] + [0.5],  # 2 ms more, but one 500 ms outlier
        },
        "plain": {"direct": [9.0], "gateway": [9.0]},  # the targets' pair: not read here
    }
    assert added(raw) == {
        "gateway": {"p50": 3.0, "p99": 3.0},
        TMPFS_SIDE: {"p50": 2.0, "p99": 400.0},
    }
