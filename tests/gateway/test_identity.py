"""Clients, keys and limits (gateway/identity.py), without a server: the file's rules, the token bucket, reloads."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gateway import identity
from gateway.errors import ClientOverLimit
from gateway.identity import ClientLimits, Clients, ClientSpec, ClientsSource, Permission


def spec(name: str, key: str, **limits: object) -> ClientSpec:
    return ClientSpec(name=name, key_hashes=[identity.hash_key(key)], permissions=frozenset({Permission.ANALYZE}), **limits)


def write_clients(path: Path, *entries: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump({"clients": list(entries)}))
    return path


def entry(name: str, key: str, *permissions: str) -> dict[str, object]:
    return {"name": name, "key_hashes": [identity.hash_key(key)], "permissions": list(permissions or ["analyze"])}


def test_keys_are_stored_salted_and_only_their_own_key_matches():
    key = identity.new_key()
    one, two = identity.hash_key(key), identity.hash_key(key)
    assert one != two and key not in one  # a new salt each time; never the key itself
    assert identity.key_matches(key, one) and identity.key_matches(key, two)
    assert not identity.key_matches(key + "x", one)
    clients = Clients((spec("his", key), spec("batch", identity.new_key())))
    assert clients.authenticate(key).name == "his"
    assert clients.authenticate("cxr_forged") is None


def test_a_file_that_breaks_a_rule_is_refused_naming_the_rule(tmp_path):
    key = identity.new_key()
    his = entry("his", key)
    cases = {
        "two clients have the same name": [his, entry("his", identity.new_key())],
        "two clients share a key hash": [his, {**entry("pacs", key), "key_hashes": his["key_hashes"]}],
        "permissions": [entry("his", key, "superuser")],
        "key_hashes": [{**entry("his", key), "key_hashes": ["plain-text-key-0123456789"]}],
        "Extra inputs are not permitted": [{**entry("his", key), "api_key": key}],
    }
    for why, entries in cases.items():
        with pytest.raises(identity.ClientsFileInvalid, match=why):
            identity.read_clients_file(write_clients(tmp_path / "clients.yaml", *entries))
    (tmp_path / "bad.yaml").write_text("clients: [unclosed")
    with pytest.raises(identity.ClientsFileInvalid, match="not YAML"):
        identity.read_clients_file(tmp_path / "bad.yaml")


def test_permissions_and_allowed_models():
    his = ClientSpec(
        name="his",
        key_hashes=[identity.hash_key("k")],
        permissions=frozenset({Permission.ANALYZE}),
        models=frozenset({"cxr-report"}),
    )
    assert his.may(Permission.ANALYZE, "cxr-report")
    assert not his.may(Permission.ANALYZE, "pneumonia-classifier")
    assert not his.may(Permission.CHAT, "report-llm") and not his.may(Permission.ADMIN)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_token_bucket_refills_at_the_clients_rate_and_names_its_limit():
    clock, limited = Clock(), spec("batch", "k", requests_per_minute=60, burst=2)
    limits = ClientLimits(clock)
    for _ in range(2):
        limits.admit(limited)
        limits.release()
    with pytest.raises(ClientOverLimit) as refused:
        limits.admit(limited)
    assert (
        refused.value.retry_after_s == 1
        and "'batch'" in refused.value.message
        and "60 requests per minute" in refused.value.message
    )
    clock.now += 1.0  # one token back at one per second
    limits.admit(limited)


def test_concurrency_is_counted_until_release_and_a_refusal_costs_no_token():
    clock, limited = Clock(), spec("pacs", "k", max_concurrency=1, requests_per_minute=600, burst=2)
    limits = ClientLimits(clock)
    limits.admit(limited)
    for _ in range(3):
        with pytest.raises(ClientOverLimit, match="1 requests in flight"):
            limits.admit(limited)
    limits.release()
    limits.admit(limited)  # the refusals above took no token: one is left of the burst of two


def test_a_reload_keeps_the_good_file_when_the_new_one_is_bad(tmp_path, caplog):
    first, second = identity.new_key(), identity.new_key()
    path = write_clients(tmp_path / "clients.yaml", entry("his", first))
    source = ClientsSource(path, [])
    source.clients.limits_of(source.clients.authenticate(first)).in_flight = 1
    path.write_text("clients: [{name: his}]")
    with caplog.at_level(logging.ERROR, logger="gateway"):
        assert source.reload() is False
    assert "clients file refused" in caplog.text and first not in caplog.text
    assert source.clients.authenticate(first).name == "his"
    write_clients(path, entry("his", second))
    assert source.reload() is True
    assert source.clients.authenticate(first) is None and source.clients.authenticate(second).name == "his"
    assert source.clients.limits["his"].in_flight == 1  # a reload does not forget requests in flight


def test_legacy_keys_are_clients_with_every_permission_and_a_deprecation_line(caplog):
    key = "legacy-key-0123456789abcdef"
    with caplog.at_level(logging.WARNING, logger="gateway"):
        source = ClientsSource(None, [key])
    client = source.clients.authenticate(key)
    assert client.name == identity.key_id(key) and client.permissions == frozenset(Permission)
    assert "deprecated setting" in caplog.text


def test_the_cli_makes_a_key_whose_entry_the_gateway_accepts(tmp_path):
    made = subprocess.run(
        [sys.executable, "-m", "gateway", "clients", "new-key", "his", "--permission", "analyze"],
        capture_output=True,
        text=True,
        check=True,
    )
    key = made.stderr.strip().rsplit(" ", 1)[-1]
    assert key.startswith("cxr_") and key not in made.stdout
    path = tmp_path / "clients.yaml"
    path.write_text(made.stdout)
    assert Clients(identity.read_clients_file(path).clients).authenticate(key).name == "his"
    checked = subprocess.run([sys.executable, "-m", "gateway", "clients", "check", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0 and checked.stdout.strip() == "his: analyze; 1 key(s)"
    path.write_text("clients: []\nextra: 1\n")
    refused = subprocess.run([sys.executable, "-m", "gateway", "clients", "check", str(path)], capture_output=True, text=True)
    assert refused.returncode == 1 and "refused" in refused.stdout
