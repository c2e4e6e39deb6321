"""Provenance of every answer: the models, the engines that ran them, and the versions of prompt, schema and rules.

Engine versions are asked from the backends (vLLM's `/version`, the worker's
model metadata) and kept once known; until a backend answers, its engine reads
"unknown", never a guess.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from gateway.clinical.content import ClinicalContent, Language
from gateway.clinical.structured import SCHEMA_SHA256
from gateway.protocol import ModelInfo, Provenance

UNKNOWN = "unknown"


class EngineVersions:
    def __init__(self, sources: dict[str, Callable[[], Awaitable[str | None]]]) -> None:
        self._sources = sources
        self._known: dict[str, str] = {}

    async def get(self) -> dict[str, str]:
        missing = [role for role in self._sources if role not in self._known]
        if missing:
            answers = await asyncio.gather(*(self._sources[role]() for role in missing))
            self._known.update({role: version for role, version in zip(missing, answers, strict=True) if version})
        return {role: self._known.get(role, UNKNOWN) for role in self._sources}


def provenance(content: ClinicalContent, models: list[ModelInfo], engines: dict[str, str], language: Language) -> Provenance:
    return Provenance(
        models=models,
        engines=engines,
        prompt_sha256=content.report_prompt_sha256[language],
        schema_sha256=SCHEMA_SHA256,
        rules_sha256=content.rules_sha256,
    )
