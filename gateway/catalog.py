"""Which model name goes where, and what each model's card says.

Routing is data: the pipeline name, the classifier's served name and one
pass-through entry per vLLM backend. Model cards are read once at start-up
(from the model folder, or GATEWAY_<ROLE>_MODEL_CARD for hub weights); a model
without a card is reported as not cleared for clinical use and of unknown
licence rather than guessed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from gateway.identity import Permission
from gateway.protocol import ModelInfo
from services.contract import modelcard
from services.contract.roles import Role


class Route(enum.Enum):
    PIPELINE = "pipeline"
    PASSTHROUGH = "passthrough"
    CLASSIFIER = "classifier"

    @property
    def permission(self) -> Permission:
        """What a client needs to call a model of this route: analysing an X-ray, or chatting with a model."""
        return Permission.CHAT if self is Route.PASSTHROUGH else Permission.ANALYZE


@dataclass(frozen=True)
class Catalog:
    routes: dict[str, Route]
    models: dict[Role, ModelInfo]

    @property
    def clinical_use(self) -> bool:
        """Whether every model's card clears it for clinical use: the pipeline is as cleared as the least of them.
        While not, every result carries the stand-in notice and the page shows it."""
        return all(info.clinical_use for info in self.models.values())

    def route(self, model: str) -> Route | None:
        return self.routes.get(model)

    def served(self, model: str, route: Route) -> list[ModelInfo]:
        """The models that answer a request for `model`: all of them for the pipeline."""
        if route is Route.PIPELINE:
            return list(self.models.values())
        return [info for info in self.models.values() if info.name == model]


def audited(models: list[ModelInfo]) -> list[dict[str, str | None]]:
    return [{"name": m.name, "sha256": m.sha256} for m in models]


def read_card(card_file: Path) -> modelcard.ModelCard | None:
    return modelcard.read_file(card_file) if card_file.is_file() else None


def model_info(role: Role, served_name: str, card_file: Path, card: modelcard.ModelCard | None) -> ModelInfo:
    if card is None:
        return ModelInfo(
            role=role,
            name=served_name,
            sha256=None,
            clinical_use=False,
            description=f"no model card at {card_file}; treated as not cleared for clinical use",
            licence=None,
            commercial_use=False,
        )
    return ModelInfo(
        role=role,
        name=served_name,
        sha256=card.sha256,
        clinical_use=card.clinical_use,
        description=card.description,
        licence=card.licence,
        commercial_use=card.commercial_use,
    )


class LicenceRefused(ValueError):
    """A commercial deployment is configured with a model whose licence does not allow it."""


def check_commercial_use(infos: list[ModelInfo]) -> None:
    refused = [f"{i.name} ({i.licence or 'no model card: licence unknown'})" for i in infos if not i.commercial_use]
    if refused:
        raise LicenceRefused(
            "GATEWAY_COMMERCIAL_USE is set, but these models' licences do not allow commercial use: " + "; ".join(refused)
        )
