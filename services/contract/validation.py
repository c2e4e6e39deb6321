"""The first problem pydantic found, said one way everywhere: where it is, and what is wrong.

Used by both APIs' 400s and by the loaders of the data files (rules, prompts, page labels), so that a
client and an operator read the same form: `field.subfield: message`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

# FastAPI prefixes the location of a request body's problems with "body"; a client never wrote that word.
_REQUEST_PARTS = ("body",)


def first_problem(error: ValidationError | Sequence[Mapping[str, Any]]) -> tuple[str | None, str]:
    """(where, what) of the first problem; `where` is the dotted location, None for the whole document."""
    problems = error.errors() if isinstance(error, ValidationError) else error
    first = problems[0]
    location = list(first.get("loc", ()))
    if location and location[0] in _REQUEST_PARTS:
        location = location[1:]
    return ".".join(str(part) for part in location) or None, str(first.get("msg", "invalid"))


def describe(error: ValidationError | Sequence[Mapping[str, Any]], whole: str) -> str:
    """`where: what`, naming the whole document as `whole` when the problem is at its top level."""
    where, what = first_problem(error)
    return f"{where or whole}: {what}"
