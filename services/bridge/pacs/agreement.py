"""How often the radiologists agreed with each model, from the verified SRs alone (pacs/verified.py).

Per model version (name and the sha256 of its weights) and finding:
- the shares of verdicts: accepted, rejected, modified;
- where the signed states give enough reference cases (`min_cases` of each, signed present and signed
  absent; a finding signed `uncertain` is no reference), the model's call against the reviewers' as
  sensitivity, specificity, positive predictive value and accuracy, each with its 95 % Wilson score
  interval (Wilson, 1927: well-behaved near 0 and 1 and for small counts, where the normal approximation is
  not), beside the figures the model card publishes for the same metric.

These are agreement with the reviewers, not ground truth: a reviewer who accepts by habit inflates them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from services.bridge.pacs.verified import Signed, SignedFinding
from services.contract.modelcard import ModelCard

Z_95 = 1.959963984540054  # the standard normal's 97.5th percentile
# The model cards' metric names (services/contract/modelcard.py) for the figures computed here.
CARD_METRICS = {"sensitivity": "fracture_recall", "ppv": "fracture_precision", "accuracy": "val_accuracy"}


@dataclass(frozen=True)
class Estimate:
    """A proportion `successes / trials` with its 95 % Wilson score interval."""

    successes: int
    trials: int

    @property
    def value(self) -> float:
        return self.successes / self.trials

    @property
    def interval(self) -> tuple[float, float]:
        n, p, z2 = self.trials, self.value, Z_95 * Z_95
        centre = (p + z2 / (2 * n)) / (1 + z2 / n)
        half = Z_95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
        return max(0.0, centre - half), min(1.0, centre + half)

    def __str__(self) -> str:
        low, high = self.interval
        return f"{self.value:.3f} ({low:.3f}-{high:.3f}, {self.successes}/{self.trials})"


@dataclass
class Agreement:
    model: str
    sha256: str
    finding: str
    verdicts: dict[str, int] = field(default_factory=lambda: {"accepted": 0, "rejected": 0, "modified": 0})
    # The model's call against the signed state: true/false positives and negatives.
    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0

    @property
    def reviews(self) -> int:
        return sum(self.verdicts.values())

    def share(self, verdict: str) -> float:
        return self.verdicts[verdict] / self.reviews

    def add(self, signed: SignedFinding) -> None:
        self.verdicts[signed.verdict] += 1
        if signed.state == "uncertain":
            return
        positive, called = signed.state == "present", signed.ai.call == "present"
        if positive:
            self.tp, self.fn = self.tp + called, self.fn + (not called)
        else:
            self.fp, self.tn = self.fp + called, self.tn + (not called)

    def figures(self, min_cases: int) -> dict[str, Estimate]:
        """Sensitivity and the rest, when there are at least `min_cases` signed positives and negatives."""
        if self.tp + self.fn < min_cases or self.tn + self.fp < min_cases:
            return {}
        figures = {
            "sensitivity": Estimate(self.tp, self.tp + self.fn),
            "specificity": Estimate(self.tn, self.tn + self.fp),
            "accuracy": Estimate(self.tp + self.tn, self.tp + self.tn + self.fp + self.fn),
        }
        if self.tp + self.fp:
            figures["ppv"] = Estimate(self.tp, self.tp + self.fp)
        return figures


def agreement(signed: Iterable[Signed]) -> list[Agreement]:
    """One row per model version and finding, in the order first seen."""
    rows: dict[tuple[str, str, str], Agreement] = {}
    for result in signed:
        for finding in result.findings:
            key = (finding.ai.model, finding.ai.sha256, finding.ai.finding)
            rows.setdefault(key, Agreement(*key)).add(finding)
    return list(rows.values())


def _published(card: ModelCard | None, figure: str) -> str:
    metric = card.metric(CARD_METRICS[figure]) if card is not None and figure in CARD_METRICS else None
    return f"   published {metric.value:.3f} ({metric.source})" if metric else ""


def table(rows: list[Agreement], cards: Mapping[str, ModelCard], min_cases: int) -> list[str]:
    """The agreement report as lines of text: per model version and finding, shares, then figures where enough."""
    lines = []
    for row in rows:
        card = cards.get(row.model)
        other = card is not None and card.sha256 not in (None, row.sha256)
        shares = ", ".join(f"{verdict} {row.share(verdict):.1%}" for verdict in row.verdicts)
        lines.append(f"{row.model} sha256={row.sha256[:16]} {row.finding}: {row.reviews} review(s): {shares}")
        if other:
            lines.append("  (its model card describes other weights: the published figures are of another version)")
        figures = row.figures(min_cases)
        if not figures:
            lines.append(f"  too few reference cases for figures (fewer than {min_cases} signed present or absent)")
        for name, estimate in figures.items():
            lines.append(f"  {name:<11} {estimate}{_published(card, name)}")
    return lines or ["no verified results in the range"]
