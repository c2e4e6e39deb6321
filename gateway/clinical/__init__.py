"""Clinical content as data: rule tables, fracture-text cues, prompts, disclaimers.

`load()` reads rules.yaml and prompts/ once (in the gateway's lifespan); the
rest of the gateway sees only the typed `ClinicalContent`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

Language = Literal["zh", "en"]
LANGUAGES: tuple[Language, ...] = ("zh", "en")
CLINICAL_DIR = Path(__file__).parent


@dataclass(frozen=True)
class ClinicalContent:
    rules: dict[str, Any]
    report_prompts: dict[str, str]
    fracture_prompt: str

    def text(self, key: str, language: Language) -> str:
        return self.rules[key][language]

    def placeholder(self, key: str, language: Language) -> str:
        return self.rules["placeholders"][key][language]


def load(folder: Path = CLINICAL_DIR) -> ClinicalContent:
    rules = yaml.safe_load((folder / "rules.yaml").read_text(encoding="utf-8"))
    prompts = {lang: (folder / "prompts" / f"report.{lang}.md").read_text(encoding="utf-8") for lang in LANGUAGES}
    fracture_prompt = (folder / "prompts" / "fracture.en.md").read_text(encoding="utf-8").strip()
    return ClinicalContent(rules=rules, report_prompts=prompts, fracture_prompt=fracture_prompt)
