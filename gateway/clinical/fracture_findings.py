"""ChexFract's free text → a `suspected` flag, with negation and uncertainty handling.

Read with gateway/clinical/negation.py and rules.yaml's `fracture_terms`: the flag is a triage hint, and
the clauses that set it (stated present or uncertain: for triage a possible fracture is suspected) are
returned as evidence so a reader can see why.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.clinical import negation
from gateway.clinical.content import Cues


@dataclass(frozen=True)
class FractureFinding:
    suspected: bool
    evidence: list[str]


def parse(text: str, terms: Cues) -> FractureFinding:
    evidence = [m.clause for m in negation.mentions(text, terms) if m.stated != "absent"]
    return FractureFinding(suspected=bool(evidence), evidence=evidence)
