"""The three model roles of cxr-serve; every module that names a role uses this enum."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    REPORT = "report"
    FRACTURE = "fracture"
    CLASSIFIER = "classifier"
