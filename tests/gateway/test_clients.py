"""Named clients on a real gateway: permissions per model, admin-only paths, each client's own limits, reloads
without a restart, and the client's name as the audit trail's actor (OWASP API1/API5 and API4, 2023)."""

from __future__ import annotations

import json
import os
import signal

import httpx
import pytest
import yaml

from gateway import identity
from tests.gateway.conftest import xray_message
from tests.waiting import wait_until

KEYS = {name: identity.new_key() for name in ("his", "chatbot", "ops", "batch", "burst")}
SPECS = {
    "his": {"permissions": ["analyze"], "models": ["cxr-report"]},
    "chatbot": {"permissions": ["chat"], "max_concurrency": 1},
    "ops": {"permissions": ["admin"]},
    "batch": {"permissions": ["chat", "analyze"], "requests_per_minute": 6, "burst": 2},
    "burst": {"permissions": ["chat"]},
}


def clients_yaml(names: list[str], keys: dict[str, str] = KEYS) -> str:
    entries = [{"name": n, "key_hashes": [identity.hash_key(keys[n])], **SPECS[n]} for n in names]
    return yaml.safe_dump({"clients": entries})


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name]}"}


@pytest.fixture(scope="module")
def clients_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("clients") / "clients.yaml"
    path.write_text(clients_yaml(["his", "chatbot", "ops", "batch"]))
    return path


@pytest.fixture(scope="module")
def gateway(start_gateway, clients_file):
    return start_gateway(GATEWAY_CLIENTS_FILE=str(clients_file))


def error_of(response: httpx.Response) -> dict:
    return response.json()["error"]


def test_a_client_only_reaches_the_models_and_paths_it_is_permitted(gateway, sample_images):
    listed = httpx.get(f"{gateway.url}/v1/models", headers=auth("his")).json()["data"]
    assert [m["id"] for m in listed] == ["cxr-report"]
    for model in ("report-llm", "pneumonia-classifier"):  # chat is not its permission; the classifier not its model
        body = {"model": model, "messages": xray_message(next(iter(sample_images.values())))}
        refused = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=auth("his"))
        assert refused.status_code == 403 and error_of(refused)["type"] == "permission_error", refused.text
        assert "'his'" in error_of(refused)["message"]
    analyze = httpx.post(f"{gateway.url}/v1/analyze", files={"file": ("x.jpeg", b"x")}, headers=auth("chatbot"))
    assert analyze.status_code == 403 and "'analyze'" in error_of(analyze)["message"]


def test_metrics_and_api_documents_need_admin_and_the_probes_and_page_need_nothing(gateway):
    for path in ("/metrics", "/docs", "/openapi.json"):
        assert httpx.get(f"{gateway.url}{path}").status_code == 401
        assert httpx.get(f"{gateway.url}{path}", headers=auth("his")).status_code == 403
        assert httpx.get(f"{gateway.url}{path}", headers=auth("ops")).status_code == 200
    for path in ("/health", "/ui", "/ui/config.json"):
        assert httpx.get(f"{gateway.url}{path}").status_code == 200
    assert httpx.get(f"{gateway.url}/ui/config.json").json()["auth_required"] is True


def test_a_client_over_its_rate_is_refused_before_any_work_while_another_is_served(gateway):
    answers = [httpx.get(f"{gateway.url}/v1/models", headers=auth("batch")) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    refused = answers[-1]
    assert error_of(refused)["code"] == "client_over_limit" and "'batch'" in error_of(refused)["message"]
    assert "6 requests per minute (burst 2)" in error_of(refused)["message"]
    assert int(refused.headers["retry-after"]) >= 1
    assert httpx.get(f"{gateway.url}/v1/models", headers=auth("his")).status_code == 200


def test_a_client_at_its_concurrency_holds_its_slot_for_a_whole_stream(gateway):
    body = {"model": "report-llm", "messages": [{"role": "user", "content": "Count to fifty."}], "max_tokens": 96, "stream": True}
    with httpx.Client(base_url=gateway.url, timeout=120) as http:
        with http.stream("POST", "/v1/chat/completions", json=body, headers=auth("chatbot")) as streaming:
            assert streaming.status_code == 200
            lines = streaming.iter_lines()
            next(lines)  # the stream is under way
            second = http.get("/v1/models", headers=auth("chatbot"))
            assert second.status_code == 429 and "1 requests in flight" in error_of(second)["message"]
            assert http.get("/v1/models", headers=auth("his")).status_code == 200  # another client is served
            assert "data: [DONE]" in list(lines)
        # Released as the response ends on the server, a moment after the client has its last byte.
        wait_until(lambda: http.get("/v1/models", headers=auth("chatbot")).status_code == 200, 5, "the slot released")


def test_the_clients_file_is_reloaded_on_change_and_on_sighup_and_a_bad_one_is_refused(start_gateway, tmp_path):
    path = tmp_path / "clients.yaml"
    path.write_text(clients_yaml(["his"]))
    gateway = start_gateway(GATEWAY_CLIENTS_FILE=str(path))

    def status(name: str) -> int:
        return httpx.get(f"{gateway.url}/v1/models", headers=auth(name)).status_code

    assert status("burst") == 401
    path.write_text(clients_yaml(["his", "burst"]))  # a new client, on change
    wait_until(lambda: status("burst") == 200, 10, "the new client, after the file changed")
    path.write_text("clients:\n  - name: his\n    permissions: [analyze]\n")  # no key hashes: refused
    wait_until(lambda: "clients file refused" in gateway.log_text(), 10, "the bad file refused")
    assert status("his") == 200 and status("burst") == 200  # the previous clients stay
    rotated = {**KEYS, "his": identity.new_key()}
    path.write_text(clients_yaml(["his"], rotated))
    os.utime(path, (1, 1))  # an mtime the poll already saw would hide the change: SIGHUP tells it
    gateway.process.send_signal(signal.SIGHUP)
    wait_until(lambda: status("his") == 401, 10, "the old key gone after SIGHUP")  # no restart
    new = httpx.get(f"{gateway.url}/v1/models", headers={"Authorization": f"Bearer {rotated['his']}"})
    assert new.status_code == 200 and gateway.process.poll() is None
    assert not any(key in gateway.log_text() for key in (*KEYS.values(), rotated["his"]))


def test_the_audit_trail_names_the_client(start_gateway, tmp_path, sample_images):
    path, trail = tmp_path / "clients.yaml", tmp_path / "audit"
    path.write_text(clients_yaml(["his"]))
    gateway = start_gateway(GATEWAY_CLIENTS_FILE=str(path), GATEWAY_AUDIT_DIR=str(trail))
    image = next(iter(sample_images.values()))
    answered = httpx.post(
        f"{gateway.url}/v1/analyze",
        files={"file": ("x.jpeg", image)},
        headers={**auth("his"), "x-request-id": "named"},
        timeout=300,
    )
    assert answered.status_code == 200
    httpx.post(f"{gateway.url}/v1/analyze", files={"file": ("x.jpeg", image)}, headers={"x-request-id": "nobody"})
    records = {r["request_id"]: r for r in map(json.loads, (trail / "audit.jsonl").read_text().splitlines())}
    assert records["named"]["actor"] == "his" and records["named"]["status"] == 200
    assert records["nobody"]["actor"] == "anonymous" and records["nobody"]["outcome"] == "refused"


def test_no_key_token_or_audit_secret_reaches_a_log_an_error_or_the_trail(gateway):
    forged = identity.new_key()
    refused = httpx.get(f"{gateway.url}/v1/models", headers={"Authorization": f"Bearer {forged}"})
    assert refused.status_code == 401 and forged not in refused.text
    audit_secret = (gateway.audit_dir.parent / "audit.key").read_text().strip()
    written = gateway.log_text() + "".join(path.read_text() for path in gateway.audit_dir.iterdir())
    leaked = [name for name, value in {**KEYS, "forged": forged, "audit key": audit_secret}.items() if value in written]
    assert leaked == []
