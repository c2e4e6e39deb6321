"""`make run`'s launcher: READY line, a clear error for a busy port, restarts, and no orphans after a kill or a stop signal."""

import os
import signal
import socket

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
