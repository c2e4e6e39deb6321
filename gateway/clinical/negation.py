"""Negation-aware reading of clinical free text: in each clause that names a term, is it stated present,
absent or uncertain?

Deliberately simple and transparent, NegEx-style (Chapman et al., 2001), with the cue words as data
(rules.yaml): a clause is cut at sentence and clause punctuation and at ", but" / ", however"; a term with an
uncertainty cue anywhere in its clause is `uncertain`; else with a negation cue before it ("no fracture") or
a post-negation cue after it ("pneumonia is absent") it is `absent`; else `present`. ChexFract's text
(gateway/clinical/fracture_findings.py) and the report's (gateway/clinical/consistency.py) are read with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from gateway.clinical.content import Cues

Stated = Literal["present", "absent", "uncertain"]

_CLAUSES = re.compile(r"[.;:!?\n。；！？]|,\s*(?:but|however)\b|，")


@dataclass(frozen=True)
class Mention:
    clause: str
    stated: Stated


def _cue(words: list[str]) -> re.Pattern[str]:
    # Word boundaries for Latin words ("not" must not match "cannot"); CJK cues match as they are. An empty
    # list matches nothing.
    parts = [rf"\b{re.escape(w)}\b" if w.isascii() else re.escape(w) for w in sorted(words, key=len, reverse=True)]
    return re.compile("|".join(parts) or r"(?!)", re.IGNORECASE)


def mentions(text: str, cues: Cues) -> list[Mention]:
    """Each clause of `text` that names one of the cues' terms, with what it states of it."""
    mention, negation = _cue(cues.mention), _cue(cues.negation)
    post_negation, uncertainty = _cue(cues.post_negation), _cue(cues.uncertainty)
    found = []
    for clause in (c.strip() for c in _CLAUSES.split(text)):
        term = mention.search(clause)
        if not term:
            continue
        stated: Stated = "present"
        if uncertainty.search(clause):
            stated = "uncertain"
        elif negation.search(clause[: term.start()]) or post_negation.search(clause[term.end() :]):
            stated = "absent"
        found.append(Mention(clause, stated))
    return found
