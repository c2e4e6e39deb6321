"""How the bench judges a target: on the median of its rounds, with the spread kept; the knee and the bounds."""

from scripts.bench.phases import knee
from scripts.bench.targets import fan_out_bound_ms, shared_device_bound
from scripts.benchlib import markdown_table, straddles, target_over_runs


def test_a_target_passes_on_the_median_of_its_runs_not_on_its_best_or_worst():
    judged = target_over_runs("ratio", [0.8, 1.2, 0.95], goal=0.9, unit="ratio")
    assert judged["measured"] == 0.95 and judged["pass"] is True
    assert judged["spread"] == [0.8, 1.2] and judged["runs"] == [0.8, 1.2, 0.95]
    lower = target_over_runs("ms", [1.0, 3.0, 2.5], goal=2.0, unit="ms", higher_is_better=False)
    assert lower["measured"] == 2.5 and lower["pass"] is False


def test_the_table_shows_the_spread_of_the_runs():
    table = markdown_table({"targets": [target_over_runs("added ms", [1.0, 3.0, 2.5], 2.0, "ms", False)]})
    assert "| added ms | 2.5 | 3 (1.0-3.0) | <= 2.0 ms | FALL SHORT |" in table


def test_the_knee_is_the_least_concurrency_within_a_tenth_of_the_best_throughput():
    levels = {c: {"throughput_rps": rps} for c, rps in {1: 0.2, 4: 0.5, 16: 0.75, 32: 0.8, 64: 0.79}.items()}
    assert knee(levels) == 16  # 0.75 >= 0.9 * 0.8
    levels[16]["throughput_rps"] = 0.7
    assert knee(levels) == 32


def test_shared_device_and_fan_out_bounds():
    round_ = {
        "fracture_c16": {"throughput_rps": 2.0},
        "report_c16": {"throughput_rps": 2.0},
        "alone_c1_ms": {"classifier": 50.0, "fracture": 1200.0, "report": 3000.0},
    }
    assert shared_device_bound(round_) == 1.0  # two stages of 0.5 s device time each
    assert fan_out_bound_ms(round_) == 4200.0


def test_a_target_whose_runs_straddle_its_goal_is_unresolved_not_passed_or_failed_by_luck():
    straddling = straddles(target_over_runs("ratio", [0.8, 1.2, 0.95], goal=0.9, unit="ratio"))
    assert straddling["pass"] is None and straddling["unresolved"] is True
    assert "UNRESOLVED (its runs straddle the goal)" in markdown_table({"targets": [straddling]})
    clear = straddles(target_over_runs("ratio", [1.0, 1.2, 0.95], goal=0.9, unit="ratio"))
    assert clear["pass"] is True and "unresolved" not in clear
