"""`make run`'s launcher: READY line, a clear error for a busy port, and no orphans after a stop signal."""

import signal
import socket

import httpx
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
