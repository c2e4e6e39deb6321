"""The gateway's settings: the same GATEWAY_<ROLE>_* variables land in one typed model per role, refused values
are never echoed, and every variable the launcher derives from models.yaml reaches a setting."""

from __future__ import annotations

import os

import httpx
import pytest
from pydantic import ValidationError

from gateway.settings import GatewaySettings
from scripts.launcher import config
from scripts.launcher.commands import gateway_env
from services.contract.roles import Role
from tests.waiting import wait_until


@pytest.fixture
def derived(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """What `make run` gives the gateway, as the only GATEWAY_* variables in the environment."""
    env = gateway_env(config.load("cpu", env={}))
    for name in [n for n in os.environ if n.startswith("GATEWAY_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def _fields(settings: GatewaySettings) -> dict[str, object]:
    """Every setting under the variable name that sets it."""
    flat = {f"GATEWAY_{name.upper()}": value for name, value in settings.model_dump().items() if name not in set(Role)}
    for role, backend in settings.backends().items():
        flat |= {f"GATEWAY_{role.upper()}_{name.upper()}": value for name, value in backend.model_dump().items()}
    return flat


def test_every_variable_the_launcher_derives_reaches_a_setting(derived: dict[str, str]) -> None:
    settings = _fields(GatewaySettings(_env_file=None))
    unused = sorted(name for name in derived if name.startswith("GATEWAY_") and name not in settings)
    assert unused == [], "variables with no effect"
    assert settings["GATEWAY_REPORT_MAX_TOKENS_LIMIT"] == int(derived["GATEWAY_REPORT_MAX_TOKENS_LIMIT"])
    assert settings["GATEWAY_FRACTURE_TOP_P"] == float(derived["GATEWAY_FRACTURE_TOP_P"])


def test_role_variables_keep_their_names_and_defaults(derived: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_REPORT_URL", "http://10.1.2.3:11434/v1")
    monkeypatch.setenv("GATEWAY_REPORT_MAX_CONCURRENCY", "3")
    monkeypatch.setenv("GATEWAY_CONNECT_TIMEOUT_S", "2.5")
    settings = GatewaySettings(_env_file=None)
    assert settings.report.root_url == "http://10.1.2.3:11434" and settings.report.max_concurrency == 3
    assert settings.connect_timeout_s == 2.5 and settings.fracture.max_concurrency == 64  # the role's own default
    assert settings.report.sampling().max_tokens == int(derived["GATEWAY_REPORT_MAX_TOKENS"])


def test_a_missing_sampling_default_stops_the_gateway_naming_it(derived: dict[str, str], monkeypatch) -> None:
    monkeypatch.delenv("GATEWAY_REPORT_MAX_TOKENS_LIMIT")
    with pytest.raises(ValidationError, match=r"report\.max_tokens_limit"):
        GatewaySettings(_env_file=None)


def test_a_refused_backend_setting_never_echoes_the_key(derived: dict[str, str], monkeypatch, tmp_path) -> None:
    secret = "backend-key-that-must-not-be-printed"
    (tmp_path / "key").write_text(secret)
    monkeypatch.setenv("GATEWAY_FRACTURE_API_KEY", secret)
    monkeypatch.setenv("GATEWAY_FRACTURE_API_KEY_FILE", str(tmp_path / "key"))
    with pytest.raises(ValidationError, match="not both") as refused:
        GatewaySettings(_env_file=None)
    assert secret not in str(refused.value) and "fracture" in str(refused.value)
    monkeypatch.delenv("GATEWAY_FRACTURE_API_KEY")
    assert GatewaySettings(_env_file=None).fracture.key() == secret  # the file alone is read


def test_the_review_needs_its_url_and_key_together_and_an_organisation_dicom_can_hold(derived, monkeypatch) -> None:
    monkeypatch.setenv("GATEWAY_REVIEW_URL", "http://bridge:8090")
    with pytest.raises(ValidationError, match="GATEWAY_REVIEW_URL and GATEWAY_REVIEW_API_KEY go together"):
        GatewaySettings()
    monkeypatch.setenv("GATEWAY_REVIEW_API_KEY", "k" * 64)
    assert GatewaySettings().review_url == "http://bridge:8090"
    monkeypatch.setenv("GATEWAY_REVIEW_ORGANIZATION", "Radiology\\\\Main")  # a DICOM value separator
    with pytest.raises(ValidationError, match="review_organization"):
        GatewaySettings()


def test_every_variable_the_configuration_reference_lists_is_a_setting(derived: dict[str, str]) -> None:
    from scripts import configref

    listed = {variable.name for variable in configref.variables(GatewaySettings, "GATEWAY_")}
    assert listed == set(_fields(GatewaySettings(_env_file=None)))


def test_the_log_level_is_the_operators_and_a_wrong_one_stops_the_start(
    derived: dict[str, str], monkeypatch, start_gateway_without_models
) -> None:
    monkeypatch.setenv("GATEWAY_LOG_LEVEL", "loud")
    with pytest.raises(ValidationError, match="log_level"):
        GatewaySettings(_env_file=None)
    monkeypatch.delenv("GATEWAY_LOG_LEVEL")
    quiet = start_gateway_without_models(GATEWAY_LOG_LEVEL="warning")
    talkative = start_gateway_without_models()
    for gateway in (quiet, talkative):
        assert httpx.get(f"{gateway.url}/health", timeout=10).status_code == 200
    wait_until(lambda: '"msg": "request"' in talkative.log_text(), 10, "the default gateway's request line")
    assert '"level": "info"' not in quiet.log_text()
