"""Agreement figures from a fixture of known verdicts against the hand-computed ones, intervals included."""

from __future__ import annotations

import datetime as dt

import pytest

from services.bridge.pacs.agreement import Estimate, agreement
from services.bridge.pacs.verified import AiFinding, Signed, SignedFinding

AT = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)


def _signed(finding: str, call: str, verdict: str, state: str, sha: str = "cd" * 32) -> Signed:
    ai = AiFinding(finding=finding, call=call, model="chexfract", sha256=sha, tracking_id="t", tracking_uid="1.2")
    one = SignedFinding(ai=ai, verdict=verdict, state=state)
    return Signed("Chen^Wei", "dr.chen", AT, [one], "r", False, "1.2.3")


# 13 fracture reviews: 4 true positives, 1 false positive, 5 true negatives, 2 false negatives, and one the
# reviewer signed uncertain (a modified verdict, no reference case).
FIXTURE = (
    [_signed("fracture", "present", "accepted", "present")] * 4
    + [_signed("fracture", "present", "rejected", "absent")]
    + [_signed("fracture", "absent", "accepted", "absent")] * 5
    + [_signed("fracture", "absent", "rejected", "present")] * 2
    + [_signed("fracture", "absent", "modified", "uncertain")]
)


def test_verdict_shares_and_the_calls_against_the_signed_states():
    [row] = agreement(FIXTURE)
    assert (row.model, row.finding, row.reviews) == ("chexfract", "fracture", 13)
    assert (row.share("accepted"), row.share("rejected"), row.share("modified")) == (9 / 13, 3 / 13, 1 / 13)
    assert (row.tp, row.fp, row.tn, row.fn) == (4, 1, 5, 2)


@pytest.mark.parametrize(
    ("figure", "value", "low", "high"),
    [  # Wilson score intervals, computed by hand: (p + z²/2n ± z√(p(1-p)/n + z²/4n²)) / (1 + z²/n), z = 1.96
        ("sensitivity", 4 / 6, 0.300, 0.903),
        ("specificity", 5 / 6, 0.436, 0.970),
        ("ppv", 4 / 5, 0.376, 0.964),
        ("accuracy", 9 / 12, 0.468, 0.911),
    ],
)
def test_each_figure_with_its_wilson_interval(figure, value, low, high):
    [row] = agreement(FIXTURE)
    estimate = row.figures(min_cases=5)[figure]
    assert estimate.value == pytest.approx(value)
    assert estimate.interval == pytest.approx((low, high), abs=5e-4)


def test_too_few_reference_cases_give_no_figures_and_versions_are_kept_apart():
    [row] = agreement(FIXTURE)
    assert row.figures(min_cases=7) == {}  # 6 signed positives and 6 negatives
    rows = agreement([*FIXTURE, _signed("fracture", "present", "accepted", "present", sha="ef" * 32)])
    assert [(r.sha256[:2], r.reviews) for r in rows] == [("cd", 13), ("ef", 1)]


def test_the_interval_at_the_edges_stays_within_zero_and_one():
    assert Estimate(0, 5).interval == pytest.approx((0.0, 0.4345), abs=5e-4)
    assert Estimate(10, 10).interval == pytest.approx((0.7225, 1.0), abs=5e-4)
    assert str(Estimate(8, 10)) == "0.800 (0.490-0.943, 8/10)"
