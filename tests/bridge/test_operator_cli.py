"""The operator's view of the bridge, beside a running one: states, dead letters and their reasons, replay."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from tests.bridge.conftest import x_ray
from tests.bridge.test_scp import storescu
from tests.waiting import wait_until


def cli(bridge, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CXR_BRIDGE_STATE_DIR": str(bridge.state_dir)}
    command = [sys.executable, "-m", "services.bridge", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)


def test_a_dead_letter_is_listed_with_its_reason_and_replayed_into_the_running_bridge(start_bridge, tmp_path):
    bridge = start_bridge(CXR_BRIDGE_MAX_ATTEMPTS="1")  # its gateway answers nothing: dead after one attempt
    assert storescu(bridge, x_ray(tmp_path)).returncode == 0
    wait_until(lambda: bridge.rows()[0][1] == "dead", 20, "the instance dead-lettered")
    [(sop, _, _, _)] = bridge.rows()
    assert cli(bridge, "status").stdout.split() == ["dead", "1"]
    listed = cli(bridge, "dead-letters").stdout
    assert sop in listed and "after 1 attempt(s): gateway unreachable" in listed
    assert cli(bridge, "replay", "1.2.3.4.5.unknown").returncode == 1  # nothing to replay: said, and a failure
    replayed = cli(bridge, "replay", sop)
    assert replayed.returncode == 0 and "1 instance(s) back in the queue" in replayed.stdout
    # the running bridge takes it up again within seconds, and it dies again: the gateway is still away
    wait_until(lambda: len([a for a in bridge.lines("analysis") if a["sop_instance_uid"] == sop]) == 2, 20, "a second try")
    wait_until(lambda: bridge.rows()[0][1] == "dead", 20, "dead again")
    assert cli(bridge, "replay", "--all").stdout.startswith("1 instance(s)")


def test_health_readiness_and_metrics_say_what_the_bridge_holds(start_bridge, tmp_path):
    bridge = start_bridge()
    assert httpx.get(f"{bridge.url}/health", timeout=10).json() == {"status": "ok"}
    assert storescu(bridge, x_ray(tmp_path)).returncode == 0
    assert "Error: CannotUnderstand" in storescu(bridge, x_ray(tmp_path, "ct", modality="CT")).stdout
    ready = httpx.get(f"{bridge.url}/ready", timeout=10)
    assert ready.status_code == 200 and ready.json() == {"ready": True, "instances": {"received": 1}}
    metrics = httpx.get(f"{bridge.url}/metrics", timeout=10).text
    assert 'bridge_instances{state="received"} 1.0' in metrics and 'bridge_instances{state="dead"} 0.0' in metrics
    assert 'bridge_c_store_total{outcome="spooled"} 1.0' in metrics and 'bridge_c_store_total{outcome="refused"} 1.0' in metrics
    assert "1.2." not in metrics  # no UID in any label
