"""Received X-rays through a real gateway (the session stack's backends): analysed at once, each exactly once,
and none lost when the bridge is killed with a queue while the gateway is away."""

from __future__ import annotations

import json
import signal
import subprocess

import httpx
from pydicom import dcmread

from gateway import audit
from tests.bridge.conftest import x_ray
from tests.bridge.test_scp import store_status
from tests.waiting import wait_until


def _push(bridge, path) -> str:
    command = ["storescu", "-aec", "CXRSERVE", "127.0.0.1", str(bridge.port), str(path)]
    assert subprocess.run(command, capture_output=True, timeout=60).returncode == 0
    return str(dcmread(path).SOPInstanceUID)


def _analyses(folder) -> int:
    """The /v1/analyze calls the gateway answered 200, from its own audit trail."""
    written = [json.loads(line) for path in audit.chain_files(folder) for line in path.read_text().splitlines()]
    return sum(1 for record in written if record["endpoint"] == "/v1/analyze" and record["status"] == 200)


def test_a_queue_survives_kill_9_and_each_x_ray_is_analysed_once_when_the_gateway_is_back(start_bridge, start_gateway, tmp_path):
    trail = tmp_path / "trail"
    gateway = start_gateway(GATEWAY_AUDIT_DIR=str(trail))
    away = start_bridge(CXR_BRIDGE_RETRY_BASE_S="30")  # its gateway URL answers nothing
    sops = [_push(away, x_ray(tmp_path, f"dx{index}")) for index in range(3)]
    assert [state for _, state, _, _ in away.rows()] == ["received"] * 3
    away.stop(signal.SIGKILL)  # kill -9 with all three queued

    back = start_bridge(CXR_BRIDGE_GATEWAY_URL=gateway.url)  # the same state folder
    wait_until(lambda: [state for _, state, _, _ in back.rows()] == ["analysed"] * 3, 600, "all three analysed")
    for sop in sops:
        answer = json.loads(back.result(sop) or "{}")
        assert answer["cxr"]["source"]["sop_instance_uid"] == sop and answer["cxr"]["status"] == "complete"
    wait_until(lambda: _analyses(trail) >= 3, 10, "the audit records")
    assert _analyses(trail) == 3  # each exactly once
    assert sops[0] in {line["sop_instance_uid"] for line in back.lines("analysis") if line["outcome"] == "analysed"}


def test_make_run_starts_the_bridge_in_front_of_the_gateway(stack, tmp_path):
    """The session stack is `make run`'s: its bridge answers C-ECHO and sends what it receives to the gateway."""
    bridge = stack.bridge
    echo = ["echoscu", "-aec", bridge.ae_title, "127.0.0.1", str(bridge.port)]
    assert subprocess.run(echo, capture_output=True, timeout=30).returncode == 0
    path = x_ray(tmp_path)
    store = ["storescu", "-aec", bridge.ae_title, "127.0.0.1", str(bridge.port), str(path)]
    assert subprocess.run(store, capture_output=True, timeout=60).returncode == 0

    def analysed() -> bool:
        ready = httpx.get(f"http://127.0.0.1:{bridge.http_port}/ready", timeout=10).json()
        return ready["instances"].get("analysed", 0) >= 1

    wait_until(analysed, 300, "the pushed X-ray analysed by the stack's gateway")


def test_an_https_gateway_is_reached_only_through_the_hospital_ca_it_is_told_of(start_bridge, start_gateway, tls_files, tmp_path):
    gateway = start_gateway(GATEWAY_TLS_CERT_FILE=tls_files["cert"], GATEWAY_TLS_KEY_FILE=tls_files["key"])
    assert gateway.url.startswith("https://")
    untrusting = start_bridge("untrusting", CXR_BRIDGE_GATEWAY_URL=gateway.url, CXR_BRIDGE_RETRY_BASE_S="30")
    _push(untrusting, x_ray(tmp_path, "first"))
    wait_until(lambda: untrusting.rows()[0][2] >= 1, 60, "a first attempt")
    assert untrusting.rows()[0][1:4:2] == ("received", "gateway unreachable (ConnectError)")  # the certificate refused
    untrusting.stop()
    trusting = start_bridge("trusting", CXR_BRIDGE_GATEWAY_URL=gateway.url, CXR_BRIDGE_GATEWAY_CA_FILE=tls_files["ca"])
    _push(trusting, x_ray(tmp_path, "second"))
    wait_until(lambda: trusting.rows()[0][1] == "analysed", 600, "analysed over HTTPS")


def test_a_high_priority_c_store_is_analysed_as_a_stat_read(start_bridge, start_gateway, tmp_path):
    gateway = start_gateway()
    bridge = start_bridge(CXR_BRIDGE_GATEWAY_URL=gateway.url)
    assert store_status(bridge, x_ray(tmp_path, "stat"), priority=0x0001) == (0, "")  # HIGH
    wait_until(lambda: [state for _, state, _, _ in bridge.rows()] == ["analysed"], 600, "the STAT X-ray analysed")
    assert [(line["priority"], line["outcome"]) for line in bridge.lines("analysis")] == [("stat", "analysed")]
    logged = [json.loads(line) for line in gateway.log_text().splitlines() if line.startswith("{")]
    assert [entry["priority"] for entry in logged if entry.get("path") == "/v1/analyze"] == ["stat"]
