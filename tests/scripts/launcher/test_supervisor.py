"""`make run`'s launcher: READY line, a clear error for a busy port, restarts, and no orphans after a kill or a stop signal."""

import contextlib
import os
import signal
import socket
import time

import httpx
import psutil
import pytest

from tests.conftest import LauncherProcess, port_overrides


@pytest.fixture
def env():
    return port_overrides()


@pytest.mark.parametrize(
    ("sig", "whole_group"),
    [(signal.SIGTERM, False), (signal.SIGTERM, True), (signal.SIGINT, True), (signal.SIGHUP, True)],
    ids=["SIGTERM", "SIGTERM-to-group", "SIGINT-to-group", "SIGHUP-to-group"],
)
def test_a_stop_signal_stops_every_child_and_frees_the_port(env, tmp_path, sig, whole_group):
    launcher = LauncherProcess(env, tmp_path, only="classifier")
    launcher.wait_for_line("READY http://127.0.0.1:", 120)
    url = f"http://127.0.0.1:{env['CXR_CLASSIFIER_PORT']}"
    assert httpx.get(f"{url}/v2/health/ready").status_code == 200
    assert (tmp_path / "classifier.log").read_text()
    assert launcher.stop(sig=sig, whole_group=whole_group) == 0
    assert "cxr-serve: stopped" in launcher.lines
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/v2/health/live", timeout=2)
    again = LauncherProcess(env, tmp_path, only="classifier")  # a second run works right after
    again.wait_for_line("READY ", 120)
    assert again.stop() == 0


def test_a_busy_port_is_a_clear_error_naming_the_service(env, tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", int(env["CXR_CLASSIFIER_PORT"])))
        holder.listen()
        launcher = LauncherProcess(env, tmp_path, only="classifier")
        assert launcher.process.wait(timeout=60) == 1
    launcher.stop()
    message = "\n".join(launcher.lines)
    assert f"classifier: port {env['CXR_CLASSIFIER_PORT']} is already in use" in message


def _service_tree(launcher: LauncherProcess, module: str) -> list[psutil.Process]:
    """The launcher's child running `module`, and every process under it (vLLM: its engine core)."""
    (child,) = [p for p in psutil.Process(launcher.process.pid).children() if module in " ".join(p.cmdline())]
    return [child, *child.children(recursive=True)]


def _resident_bytes(processes: list[psutil.Process]) -> int:
    return sum(process.memory_info().rss for process in processes)


@pytest.mark.model_servers
def test_a_killed_vllm_server_is_restarted_and_leaves_no_process_behind(env, tmp_path):
    """SIGKILL to vLLM's API server (as the OOM killer sends): its engine goes too, the server comes back."""
    launcher = LauncherProcess(env, tmp_path, only="report")
    try:
        launcher.wait_for_line("READY ", 600)
        before = _service_tree(launcher, "vllm.entrypoints")
        assert len(before) >= 2, "vLLM runs its engine core in a child process"
        resident_before = _resident_bytes(before)
        group = os.getpgid(before[0].pid)
        before[0].send_signal(signal.SIGKILL)
        launcher.wait_for_line("cxr-serve: vllm-report exited with code -9", 30)
        gone, alive = psutil.wait_procs(before, timeout=30)
        assert alive == [] and len(gone) == len(before), f"orphaned: {[p.pid for p in alive]}"
        with pytest.raises(ProcessLookupError):
            os.killpg(group, 0)  # nothing is left in the killed server's process group
        launcher.wait_for_line("cxr-serve: vllm-report is healthy again", 600)
        after = _service_tree(launcher, "vllm.entrypoints")
        assert len(after) == len(before)
        assert _resident_bytes(after) < 1.3 * resident_before  # one engine's memory, not two
        answer = httpx.post(
            f"http://127.0.0.1:{env['CXR_REPORT_PORT']}/v1/completions",
            json={"model": "report-llm", "prompt": "Chest X-ray", "max_tokens": 2},
            timeout=120,
        )
        assert answer.status_code == 200 and answer.json()["usage"]["completion_tokens"] >= 1
    finally:
        assert launcher.stop() == 0


def _stack_processes(launcher: LauncherProcess) -> list[psutil.Process]:
    """`make`, the launcher and every process of every service (each in a session of its own)."""
    root = psutil.Process(launcher.process.pid)
    return [root, *root.children(recursive=True)]


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group has exited already
        os.killpg(pgid, sig)


def _request_in_flight(port: int) -> socket.socket:
    """A request whose body never finishes arriving: uvicorn's graceful shutdown waits for it, as for a slow client."""
    held = socket.create_connection(("127.0.0.1", port))
    held.sendall(
        b"POST /v2/models/pneumonia-classifier/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    )
    return held


# After the first SIGTERM to the group (make forwards it too, so the launcher gets two), a second SIGTERM and a
# SIGHUP follow at different moments of the stop. A service still serving a request outlives its SIGTERM, so
# a stop cut short before its SIGKILL left it running, re-parented to init and holding its port.
STOP_DELAYS_S = (0.0, 0.01, 0.1, 0.5, 2.0)


def test_make_run_stops_every_service_whatever_stop_signals_follow(env, tmp_path):
    env = {**env, "CXR_STOP_GRACE_S": "2"}  # the held request outlives SIGTERM: SIGKILL it sooner than 15 s
    port = int(env["CXR_CLASSIFIER_PORT"])
    for delay in STOP_DELAYS_S:
        launcher = LauncherProcess(env, tmp_path, only="classifier", via_make=True)
        launcher.wait_for_line("READY ", 300)
        processes = _stack_processes(launcher)
        assert any("services.classifier" in " ".join(p.cmdline()) for p in processes), "the worker runs under make"
        with _request_in_flight(port):
            group = os.getpgid(launcher.process.pid)
            _signal_group(group, signal.SIGTERM)
            time.sleep(delay)
            _signal_group(group, signal.SIGTERM)
            _signal_group(group, signal.SIGHUP)
            launcher.stop()  # waits for make to exit
            _gone, alive = psutil.wait_procs(processes, timeout=30)
        assert alive == [], f"left behind, signals {delay} s apart: {[' '.join(p.cmdline()) for p in alive]}"
        assert "cxr-serve: stopped" in launcher.lines
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still taken, signals {delay} s apart"
