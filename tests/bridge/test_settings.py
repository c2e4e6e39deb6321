"""The bridge's settings: every variable the operator's example names is one the bridge reads, and destinations
are configured independently, off until their address is set."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from services.bridge import destinations
from services.bridge.settings import BridgeSettings
from services.contract.paths import REPO_ROOT


def test_every_variable_of_the_example_env_file_is_a_bridge_setting():
    example = (REPO_ROOT / "deploy" / "bridge.env.example").read_text()
    named = re.findall(r"^#?CXR_BRIDGE_([A-Z_]+)=", example, re.MULTILINE)
    assert named and not [name for name in named if name.lower() not in BridgeSettings.model_fields]


def test_each_destination_is_off_until_its_address_is_set(monkeypatch):
    for name in ("CXR_BRIDGE_SR_HOST", "CXR_BRIDGE_STOW_URL", "CXR_BRIDGE_RIS_HOST"):
        monkeypatch.delenv(name, raising=False)
    assert destinations.configured(BridgeSettings()) == {}
    only_ris = destinations.configured(BridgeSettings(ris_host="ris.example"))
    assert list(only_ris) == ["ris"]
    every = destinations.configured(
        BridgeSettings(sr_host="pacs.example", stow_url="http://pacs.example/dicom-web", ris_host="ris.example")
    )
    assert list(every) == ["pacs-dimse", "pacs-stow", "ris"]


def test_a_short_review_token_stops_the_start_without_echoing_it():
    with pytest.raises(ValidationError, match="at least 32 characters") as refused:
        BridgeSettings(review_token="short-secret-value")
    assert "short-secret-value" not in str(refused.value)
    assert BridgeSettings(review_token="x" * 32).review_token is not None
