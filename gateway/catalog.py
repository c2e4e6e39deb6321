"""Which model name goes where, and what each model's card says.

Routing is data: the pipeline name, the classifier's served name and one
pass-through entry per vLLM backend. Model cards are read once at start-up;
a model without a card (e.g. hub weights in the gpu profile) is reported as
not cleared for clinical use rather than guessed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from gateway.protocol import ModelInfo
from services.contract import modelcard
from services.contract.roles import Role


class Route(enum.Enum):
    PIPELINE = "pipeline"
    PASSTHROUGH = "passthrough"
    CLASSIFIER = "classifier"


@dataclass(frozen=True)
class Catalog:
    routes: dict[str, Route]
    models: dict[Role, ModelInfo]

    def route(self, model: str) -> Route | None:
        return self.routes.get(model)


def model_info(role: Role, served_name: str, folder: str) -> ModelInfo:
    path = Path(folder)
    if not (path / modelcard.CARD_FILE).is_file():
        return ModelInfo(
            role=role,
            name=served_name,
            sha256=None,
            clinical_use=False,
            description=f"no model card at {folder}; treated as not cleared for clinical use",
        )
    card = modelcard.read(path)
    return ModelInfo(
        role=role, name=served_name, sha256=card.sha256, clinical_use=card.clinical_use, description=card.description
    )
