"""Real process faults under the running stack: engines wedged (SIGSTOP), servers killed (SIGKILL).

What a client gets, how long it waits, what /ready says, and that the gateway
recovers by itself once the launcher has restarted the backend (the gateway
process is never restarted). The backends are the session stack's own
processes; each test leaves them running and healthy.
"""

import json
import re
import subprocess
import sys
import threading
import time

import httpx
import openai
import psutil
import pytest

from scripts.launcher.manifests import generation_check
from tests.conftest import gateway_url
from tests.gateway.conftest import xray_message
from tests.waiting import wait_until


def listening(port: int) -> psutil.Process:
    """The process that accepts connections on 127.0.0.1:`port`."""
    (pid,) = {c.pid for c in psutil.net_connections("tcp") if c.laddr.port == port and c.status == psutil.CONN_LISTEN}
    return psutil.Process(pid)


def kubelet_liveness(stack, role: str, deadline_s: int) -> int:
    """The exit status of the vLLM pods' liveness command (deploy/k8s), run as the kubelet runs it."""
    cfg = stack.roles[role]
    _python, *args = generation_check(cfg.port, cfg.served_name, deadline_s)
    return subprocess.run([sys.executable, *args], capture_output=True, timeout=deadline_s + 30).returncode


def ready(url: str) -> dict:
    return httpx.get(f"{url}/ready", timeout=30).json()


def metric(url: str, name: str, backend: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    match = re.search(rf'^{name}\{{backend="{backend}"\}} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


@pytest.fixture(scope="module")
def xray(sample_images) -> bytes:
    return sample_images["person1946_bacteria_4874.jpeg"]


def cxr_report(url: str, xray: bytes) -> tuple[dict, float]:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=300)
    started = time.monotonic()
    completion = client.chat.completions.create(model="cxr-report", messages=xray_message(xray))
    return completion.model_extra["cxr"], time.monotonic() - started


def test_a_wedged_fracture_engine_reads_not_ready_fails_fast_and_recovers(start_gateway, stack, xray):
    """The engine core stopped while vLLM's API process still answers /health 200 (vllm#36960)."""
    gateway = start_gateway(
        GATEWAY_FRACTURE_TIMEOUT_S="6",
        GATEWAY_BREAKER_FAILURES="2",
        GATEWAY_BREAKER_COOLDOWN_S="20",
        GATEWAY_READY_FRESH_S="1",
        GATEWAY_PROBE_TIMEOUT_S="3",
    )
    api_server = listening(stack.roles["fracture"].port)
    engine = api_server.children(recursive=True)
    assert engine, "vLLM runs its engine core in a child process"
    for process in engine:
        process.suspend()
    try:
        assert httpx.get(f"{stack.url('fracture')}/health", timeout=5).status_code == 200  # the wedge is invisible there
        assert kubelet_liveness(stack, "fracture", deadline_s=3) != 0  # but not to the pods' liveness check
        seconds = wait_until(lambda: not ready(gateway.url)["backends"]["fracture"]["ready"], 15, "fracture not ready")
        assert seconds < 1 + 3 + 2  # freshness + probe timeout, and polling slack
        assert "one-token probe got no answer within 3 s" in ready(gateway.url)["backends"]["fracture"]["detail"]
        for _ in range(2):  # two timeouts open the circuit
            cxr, _seconds = cxr_report(gateway.url, xray)
            assert cxr["status"] == "partial" and cxr["fracture"] is None
            assert "fracture backend failed: timed out after 6 s" in cxr["warnings"][0]["message"]
            assert cxr["timings_ms"]["fracture"]["duration_ms"] < 6000 + 1000  # bounded by its timeout
        cxr, _seconds = cxr_report(gateway.url, xray)
        assert "circuit is open after 2 failures" in cxr["warnings"][0]["message"]
        assert cxr["timings_ms"]["fracture"]["duration_ms"] < 100  # not called: failed at once
        assert cxr["report_available"] is True  # what does not depend on ChexFract is still served
        assert metric(gateway.url, "gateway_backend_circuit", "fracture") == 1
        assert metric(gateway.url, "gateway_circuit_refusals_total", "fracture") >= 1
        assert "circuit open" in ready(gateway.url)["backends"]["fracture"]["detail"]
    finally:
        for process in engine:
            process.resume()
    circuit = lambda: metric(gateway.url, "gateway_backend_circuit", "fracture")  # noqa: E731
    wait_until(lambda: circuit() == 2, 25, "the circuit half-open after its cooldown")  # the next call is the trial
    cxr, _seconds = cxr_report(gateway.url, xray)
    assert cxr["status"] == "complete"
    assert circuit() == 0
    wait_until(lambda: ready(gateway.url)["ready"], 30, "the gateway ready again")
    assert kubelet_liveness(stack, "fracture", deadline_s=60) == 0


def test_a_killed_classifier_is_503_at_once_then_restarted_and_served_again(stack, xray):
    url = gateway_url(stack)
    gateway_process = listening(stack.gateway.port)
    worker = listening(stack.roles["classifier"].port)
    worker.kill()
    worker.wait(10)
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=300)
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(model="cxr-report", messages=xray_message(xray))
    assert failed.value.status_code == 503 and "classifier backend failed" in failed.value.body["message"]
    assert time.monotonic() - started < 5  # connection refused: no timeout to wait out
    wait_until(lambda: ready(url)["ready"], 120, "the classifier restarted by the launcher")
    assert listening(stack.roles["classifier"].port).pid != worker.pid
    cxr, _seconds = cxr_report(url, xray)
    assert cxr["status"] == "complete"
    assert listening(stack.gateway.port).pid == gateway_process.pid  # the gateway recovered by itself


def test_a_stopped_classifier_waits_at_most_its_timeout(start_gateway, stack, xray):
    gateway = start_gateway(GATEWAY_CLASSIFIER_TIMEOUT_S="3")
    worker = listening(stack.roles["classifier"].port)
    worker.suspend()
    try:
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0, timeout=300)
        started = time.monotonic()
        with pytest.raises(openai.APIStatusError) as failed:
            client.chat.completions.create(model="cxr-report", messages=xray_message(xray))
        waited = time.monotonic() - started
        assert failed.value.status_code == 503 and "timed out after 3 s" in failed.value.body["message"]
        assert 3 <= waited < 3 + 2
    finally:
        worker.resume()
    cxr, _seconds = cxr_report(gateway.url, xray)
    assert cxr["status"] == "complete"


def _read_stream(url: str, body: dict, lines: list[str], started: threading.Event) -> None:
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=300) as response:
        for line in response.iter_lines():
            if line:
                lines.append(line)
                if ('"content":"' in line and '"content":""' not in line) or "cxr_findings" in line:
                    started.set()


def test_a_killed_report_server_ends_both_kinds_of_stream_with_an_error_event_then_recovers(stack, xray):
    """SIGKILL to the report model's vLLM while a cxr-report stream and a pass-through stream are open."""
    url = gateway_url(stack)
    pipeline_lines: list[str] = []
    relay_lines: list[str] = []
    pipeline_started, relay_started = threading.Event(), threading.Event()
    relay_body = {
        "model": "report-llm",
        "stream": True,
        "max_tokens": 1500,
        "messages": [{"role": "user", "content": "Write a long essay about the history of radiology."}],
    }
    pipeline_body = {"model": "cxr-report", "stream": True, "messages": xray_message(xray)}
    readers = [
        threading.Thread(target=_read_stream, args=(url, relay_body, relay_lines, relay_started)),
        threading.Thread(target=_read_stream, args=(url, pipeline_body, pipeline_lines, pipeline_started)),
    ]
    for reader in readers:
        reader.start()
    assert relay_started.wait(120) and pipeline_started.wait(120), "both streams were flowing"  # report stage begun
    listening(stack.roles["report"].port).kill()
    for reader in readers:
        reader.join(120)
        assert not reader.is_alive(), "a stream was left hanging"
    payloads = [line.removeprefix("data: ") for line in pipeline_lines if line.startswith("data: ")]
    assert payloads[-1] == "[DONE]" and "report backend" in json.loads(payloads[-2])["error"]["message"]
    final = json.loads(payloads[-3])
    assert final["choices"][0]["finish_reason"] == "error" and final["cxr"]["status"] == "partial"
    assert [w["stage"] for w in final["cxr"]["warnings"]] == ["report"]
    relayed = [line.removeprefix("data: ") for line in relay_lines if line.startswith("data: ")]
    assert relayed[-1] == "[DONE]" and "report backend" in json.loads(relayed[-2])["error"]["message"]
    wait_until(lambda: ready(url)["ready"], 300, "the report server restarted by the launcher")
    cxr, _seconds = cxr_report(url, xray)
    assert cxr["status"] == "complete"


def running_at(base: str) -> float:
    """Requests a vLLM server is running now (its own Prometheus gauge)."""
    text = httpx.get(f"{base}/metrics", timeout=10).text
    return sum(float(v) for v in re.findall(r"^vllm:num_requests_running\{[^}]*\} (\S+)$", text, re.MULTILINE))


def data_payloads(lines: list[str]) -> list[str]:
    return [line.removeprefix("data: ") for line in lines if line.startswith("data: ")]


def test_a_killed_fracture_server_leaves_its_requests_partial_its_engine_gone_and_is_restarted(stack, xray):
    """SIGKILL to ChexFract's API process while a plain and a streamed cxr-report are at the VLM."""
    url = gateway_url(stack)
    api_server = listening(stack.roles["fracture"].port)
    engine = api_server.children(recursive=True)
    answers: list[tuple[dict, float]] = []
    streamed: list[str] = []
    stream_body = {"model": "cxr-report", "stream": True, "messages": xray_message(xray)}
    clients = [
        threading.Thread(target=lambda: answers.append(cxr_report(url, xray))),
        threading.Thread(target=_read_stream, args=(url, stream_body, streamed, threading.Event())),
    ]
    for client in clients:
        client.start()
    wait_until(lambda: running_at(stack.url("fracture")) >= 2, 60, "both requests at the fracture VLM")
    api_server.kill()
    for client in clients:
        client.join(120)
        assert not client.is_alive(), "a request was left hanging"
    ((cxr, _seconds),) = answers
    assert cxr["status"] == "partial" and cxr["fracture"] is None  # never invented
    assert [w["stage"] for w in cxr["warnings"]] == ["fracture"] and cxr["report_available"] is True
    payloads = data_payloads(streamed)
    assert payloads[-1] == "[DONE]"
    final = next(json.loads(p) for p in reversed(payloads[:-1]) if "cxr" in json.loads(p))
    assert final["cxr"]["status"] == "partial" and [w["stage"] for w in final["cxr"]["warnings"]] == ["fracture"]
    # The launcher took the killed server's whole process tree with it: no engine is left holding memory.
    wait_until(lambda: not any(process.is_running() for process in engine), 30, "the orphaned engine gone")
    wait_until(lambda: ready(url)["ready"], 300, "the fracture server restarted by the launcher")
    assert listening(stack.roles["fracture"].port).pid != api_server.pid
    cxr, _seconds = cxr_report(url, xray)
    assert cxr["status"] == "complete"


def test_a_stopped_report_server_is_bounded_by_its_timeout_everywhere_and_recovers(start_gateway, stack, xray):
    """SIGSTOP to the report model's whole vLLM server (API process and engine): connections are accepted
    by the kernel and never answered."""
    gateway = start_gateway(GATEWAY_REPORT_TIMEOUT_S="5", GATEWAY_READY_FRESH_S="1", GATEWAY_PROBE_TIMEOUT_S="3")
    api_server = listening(stack.roles["report"].port)
    server = [api_server, *api_server.children(recursive=True)]
    for process in server:
        process.suspend()
    try:
        wait_until(lambda: not ready(gateway.url)["backends"]["report"]["ready"], 1 + 3 + 2, "report not ready")
        cxr, _seconds = cxr_report(gateway.url, xray)
        assert cxr["status"] == "partial" and cxr["report_available"] is False
        assert [w["stage"] for w in cxr["warnings"]] == ["report"] and cxr["fracture"] is not None
        assert "timed out after 5 s" in cxr["warnings"][0]["message"]
        assert cxr["timings_ms"]["report"]["duration_ms"] < 5000 + 1000
        started = time.monotonic()
        relay_body = {"model": "report-llm", "stream": True, "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}
        relayed = httpx.post(f"{gateway.url}/v1/chat/completions", json=relay_body, timeout=60)
        assert time.monotonic() - started < 5 + 2  # no stream was begun: the error comes before any header
        assert relayed.status_code == 503 and "report backend failed: timed out" in relayed.json()["error"]["message"]
    finally:
        for process in server:
            process.resume()
    wait_until(lambda: ready(gateway.url)["ready"], 30, "the gateway ready again")
    assert cxr_report(gateway.url, xray)[0]["status"] == "complete"
