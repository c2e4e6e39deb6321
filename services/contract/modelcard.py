"""Model cards: the machine-readable label that travels with every model folder.

`make setup` writes one beside each model it builds; the classifier worker and
the gateway read them at start-up and put name, sha256 and `clinical_use` into
every answer, so a stand-in can never pass for a clinical model.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

CARD_FILE = "model_card.json"
STAND_IN_NOTICE = (
    "development stand-in: a small real model that exercises the serving path; "
    "it has no clinical validity and must not be used for diagnosis"
)


class Source(BaseModel):
    package: str
    version: str
    file: str


class PublishedMetric(BaseModel):
    """A performance figure as its publisher states it, with where it comes from; never measured here."""

    model_config = ConfigDict(extra="forbid")

    metric: str  # e.g. fracture_recall, fracture_precision, val_accuracy
    value: float = Field(ge=0, le=1)
    source: str  # who published it, and for which model (a stand-in names the model it stands in for)


class ModelCard(BaseModel):
    """One model's label. `clinical_use: true` is an operator's statement that the model is validated
    for clinical use at this site (docs/models.md, "Model cards"); only then may an answer drop the stand-in notice."""

    model_config = ConfigDict(extra="forbid")

    name: str
    role: str
    description: str
    clinical_use: bool
    stand_in: bool
    source: list[Source]
    licence: str
    commercial_use: bool  # whether the licence allows commercial use; unknown counts as no
    performance: list[PublishedMetric]
    limits: list[str]
    weights_sha256: dict[str, str]
    built_by: str

    def metric(self, name: str) -> PublishedMetric | None:
        return next((m for m in self.performance if m.metric == name), None)

    @property
    def sha256(self) -> str | None:
        """The weights file's digest, or for several files one digest over theirs in file order; None when not filled in."""
        if not self.weights_sha256:
            return None
        if len(self.weights_sha256) == 1:
            return next(iter(self.weights_sha256.values()))
        joined = "".join(f"{name}:{digest}\n" for name, digest in sorted(self.weights_sha256.items()))
        return hashlib.sha256(joined.encode()).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_digests(folder: Path, pattern: str) -> dict[str, str]:
    return {path.name: file_sha256(path) for path in sorted(folder.glob(pattern))}


def write(folder: Path, card: ModelCard) -> None:
    (folder / CARD_FILE).write_text(card.model_dump_json(indent=2) + "\n")


def read(folder: Path) -> ModelCard:
    return read_file(folder / CARD_FILE)


def read_file(path: Path) -> ModelCard:
    return ModelCard.model_validate_json(path.read_text())


def verify(folder: Path) -> ModelCard:
    """The card, after checking that the weights on disk are the ones it names."""
    card = read(folder)
    for name, expected in card.weights_sha256.items():
        if file_sha256(folder / name) != expected:
            raise ValueError(f"{folder / name}: sha256 differs from {CARD_FILE}")
    return card
