"""The web page for radiologists and testers (`/ui`): its assets and its labels, read once at start-up.

Plain HTML, CSS and JavaScript from this package, no build step and nothing
from elsewhere (the Content-Security-Policy in gateway/routes/ui.py forbids
it). The page talks to the same `/v1/chat/completions` stream any client
uses, so what it shows is the API's answer, not a second implementation.

texts.yaml holds the page's own labels in both languages, validated like
rules.yaml; the clinical wording it shows comes from rules.yaml (through the
API's answers and /ui/config.json), never copied here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import RootModel, ValidationError

from gateway.clinical.content import ClinicalContentError, Language, Localized
from services.contract.validation import describe

UI_DIR = Path(__file__).parent
STATIC_DIR = UI_DIR / "static"
# Everything the page loads, by name under /ui/static/; nothing else is served from the folder.
ASSET_TYPES = {
    "app.js": "text/javascript; charset=utf-8",
    "review.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}


class _Texts(RootModel[dict[str, Localized]]):
    pass


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str


@dataclass(frozen=True)
class Page:
    index: bytes
    review: bytes  # the radiologists' review page (/ui/review)
    assets: dict[str, Asset]
    labels: dict[str, Localized]

    def labels_in(self, language: Language) -> dict[str, str]:
        return {key: text.get(language) for key, text in self.labels.items()}


def _read_labels(path: Path) -> dict[str, Localized]:
    try:
        return _Texts.model_validate(yaml.safe_load(path.read_text(encoding="utf-8"))).root
    except ValidationError as error:
        raise ClinicalContentError(f"{path}: {describe(error, '(top level)')}") from None


def load(folder: Path = UI_DIR) -> Page:
    labels = _read_labels(folder / "texts.yaml")
    return Page(
        index=(folder / "static" / "index.html").read_bytes(),
        review=(folder / "static" / "review.html").read_bytes(),
        assets={name: Asset((folder / "static" / name).read_bytes(), kind) for name, kind in ASSET_TYPES.items()},
        labels=labels,
    )
