"""Licences and clinical use from the model cards: the commercial-use guard, and when the stand-in notice goes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest

from gateway.clinical.content import load
from scripts.launcher.commands import gateway_env
from services.contract import modelcard
from services.contract.paths import REPO_ROOT
from tests.gateway.conftest import xray_message

CLINICAL = load()
NORMAL = "NORMAL2-IM-1430-0001.jpeg"


def test_a_commercial_deployment_refuses_to_start_naming_each_non_commercial_model(start_gateway):
    with pytest.raises(RuntimeError) as refused:
        start_gateway(GATEWAY_COMMERCIAL_USE="true")
    message = str(refused.value)
    assert "GATEWAY_COMMERCIAL_USE is set" in message
    assert "pneumonia-classifier (not declared by the package" in message
    assert "chexfract" not in message  # the stand-in's licence (Apache-2.0) allows it


def test_the_shipped_cards_of_the_real_models_parse_and_state_their_licences():
    cards = {path.stem: modelcard.read_file(path) for path in (REPO_ROOT / "deploy" / "model-cards").glob("*.json")}
    chexfract = cards["chexfract-chexagent"]
    assert not chexfract.commercial_use and "CC BY-NC 4.0" in chexfract.licence
    assert chexfract.metric("fracture_recall").value == 0.487 and chexfract.metric("fracture_precision").value == 0.75
    assert cards["qwen2.5-7b-instruct"].commercial_use and not chexfract.clinical_use


def cleared_cards(stack, folder: Path, cleared: set[str]) -> dict[str, str]:
    """Copies of the session's model cards, `clinical_use: true` for the roles in `cleared`, as GATEWAY_*_MODEL_CARD."""
    env = gateway_env(stack)
    overrides = {}
    for role in ("report", "fracture", "classifier"):
        card = json.loads((Path(env[f"GATEWAY_{role.upper()}_MODEL_DIR"]) / modelcard.CARD_FILE).read_text())
        card["clinical_use"] = role in cleared
        path = folder / f"{role}.json"
        path.write_text(json.dumps(card))
        overrides[f"GATEWAY_{role.upper()}_MODEL_CARD"] = str(path)
    return overrides


@pytest.mark.parametrize("cleared", [{"report", "fracture", "classifier"}, {"report", "classifier"}])
def test_the_stand_in_notice_goes_only_when_every_model_is_cleared(stack, start_gateway, sample_images, tmp_path, cleared):
    gateway = start_gateway(**cleared_cards(stack, tmp_path, cleared))
    body = {"model": "cxr-report", "messages": xray_message(sample_images[NORMAL]), "max_tokens": 8}
    cxr = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=300).json()["cxr"]
    notice = CLINICAL.text("stand_in_notice", "en")
    everything = len(cleared) == 3
    assert (notice in cxr["disclaimer"]) != everything
    assert cxr["disclaimer"].startswith(CLINICAL.text("disclaimer", "en"))  # preliminary, for a radiologist: always
    models = httpx.get(f"{gateway.url}/v1/models", timeout=10).json()["data"]
    assert next(m for m in models if m["id"] == "cxr-report")["clinical_use"] == everything


def test_a_card_from_an_older_set_up_is_rebuilt_not_trusted(tmp_path):
    from scripts.modelbuild.__main__ import _is_current

    folder = tmp_path / "model"
    shutil.copytree(REPO_ROOT / "models" / "report-llm", folder, ignore=shutil.ignore_patterns("*.safetensors"))
    assert _is_current(folder)
    card = json.loads((folder / modelcard.CARD_FILE).read_text())
    del card["commercial_use"]
    (folder / modelcard.CARD_FILE).write_text(json.dumps(card))
    assert not _is_current(folder)
