"""A request's clinical priority, from whoever sends the X-ray to every backend that serves it.

STAT is the emergency read a clinician waits for; everything else is routine (the default). The gateway reads
it from a chat request's `metadata.priority` or /v1/analyze's `priority` form field; the DICOM bridge maps a
C-STORE's Priority onto it (HIGH is STAT) and sends it on. What each layer does with it: the gateway keeps a
share of every backend's slots for STAT (gateway/admission.py), vLLM schedules a STAT call first (its
`priority`, gateway/backends/calls.py), and the bridge analyses a STAT instance before routine ones.
"""

from __future__ import annotations

import enum


class Priority(enum.StrEnum):
    STAT = "stat"
    ROUTINE = "routine"

    @classmethod
    def named(cls, value: str | None) -> Priority | None:
        """The priority a caller wrote (any case), ROUTINE when it wrote none, None for anything else."""
        if value is None or value == "":
            return cls.ROUTINE
        return next((known for known in cls if known == value.strip().lower()), None)
