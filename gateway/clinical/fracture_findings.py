"""ChexFract's free text → a `suspected` flag, with negation and uncertainty handling.

Deliberately simple and transparent (NegEx-style cue words from rules.yaml,
per clause): the flag is a triage hint, and the sentences that set it are
returned as evidence so a reader can see why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.clinical.content import FractureTerms

_CLAUSES = re.compile(r"[.;:!?\n。；！？]|,\s*(?:but|however)\b|，")


@dataclass(frozen=True)
class FractureFinding:
    suspected: bool
    evidence: list[str]


def _cue(words: list[str]) -> re.Pattern[str]:
    # Word boundaries for Latin words ("not" must not match "cannot"); CJK cues match as they are.
    parts = [rf"\b{re.escape(w)}\b" if w.isascii() else re.escape(w) for w in sorted(words, key=len, reverse=True)]
    return re.compile("|".join(parts), re.IGNORECASE)


def parse(text: str, terms: FractureTerms) -> FractureFinding:
    mention, negation, uncertainty = _cue(terms.mention), _cue(terms.negation), _cue(terms.uncertainty)
    evidence = []
    for clause in (c.strip() for c in _CLAUSES.split(text)):
        term = mention.search(clause)
        if not term:
            continue
        before = clause[: term.start()]
        if uncertainty.search(clause) or not negation.search(before):
            evidence.append(clause)
    return FractureFinding(suspected=bool(evidence), evidence=evidence)
