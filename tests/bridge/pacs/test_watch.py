"""`python -m services.bridge pacs watch` against a real Orthanc: new studies analysed exactly once, across a restart
of the watcher and an outage of the PACS."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from services.contract.paths import REPO_ROOT
from tests.bridge.pacs.helpers import PNEUMONIA, new_study, our_srs, pacs_command, wait_for_srs


class Watcher:
    def __init__(self, env: dict[str, str], output: Path) -> None:
        self.output = output
        self._out = output.open("a")
        self.process = subprocess.Popen(
            pacs_command("watch", "--interval", "1"),
            env={**os.environ, **env},
            stdout=self._out,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            text=True,
        )

    def text(self) -> str:
        return self.output.read_text()

    def wait_for_text(self, text: str, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in self.text():
            assert self.process.poll() is None, f"the watcher exited: {self.text()[-2000:]}"
            assert time.monotonic() < deadline, f"the watcher never said {text!r}: {self.text()[-2000:]}"
            time.sleep(0.5)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=120)
        self._out.close()
        return code


@pytest.fixture
def watch_env(pacs_env, tmp_path) -> dict[str, str]:
    return {**pacs_env, "CXR_PACS_STATE_FILE": str(tmp_path / "state.json"), "CXR_PACS_RETRY_MAX_S": "4"}


def test_new_studies_are_analysed_exactly_once_across_a_restart_and_a_pacs_outage(orthanc, watch_env, tmp_path):
    client = orthanc.client()
    output = tmp_path / "watch-output.txt"
    watcher = Watcher(watch_env, output)
    first = new_study(client, PNEUMONIA, "mono1")
    wait_for_srs(client, first.StudyInstanceUID, 1)
    second = new_study(client)
    wait_for_srs(client, second.StudyInstanceUID, 1)
    assert watcher.stop() == 0 and "stopped" in watcher.text()
    done = json.loads(Path(watch_env["CXR_PACS_STATE_FILE"]).read_text())["done"]
    assert {first.StudyInstanceUID, second.StudyInstanceUID} <= set(done)

    watcher = Watcher(watch_env, output)  # a restart: the state file says what is done
    third = new_study(client, PNEUMONIA, "rle")
    wait_for_srs(client, third.StudyInstanceUID, 1)

    orthanc.stop()  # the PACS goes away under a running watcher
    watcher.wait_for_text("PACS unavailable")
    assert watcher.process.poll() is None
    orthanc.start()
    fourth = new_study(client, variant="jpeg2000")
    wait_for_srs(client, fourth.StudyInstanceUID, 1)
    time.sleep(3)  # a few more polls: nothing may be analysed again
    assert watcher.stop() == 0

    for study in (first, second, third, fourth):
        assert len(our_srs(client, study.StudyInstanceUID)) == 1, f"study {study.StudyInstanceUID} analysed twice"
    assert watcher.text().count("stored") == 4
