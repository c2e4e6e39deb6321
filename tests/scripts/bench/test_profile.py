"""The overhead bench's profile summary (scripts/bench_gateway_overhead.py --profile): inclusive shares of py-spy's
samples by package and by the project's own functions."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from scripts.bench_gateway_overhead import _frame, summarise
from services.contract.paths import REPO_ROOT


def test_shares_by_package_of_the_innermost_frame_and_by_the_projects_own_functions(tmp_path: Path) -> None:
    folded = tmp_path / "profile.folded"
    loop = "run (/usr/lib/python3.11/asyncio/runners.py:118)"
    route = f"chat ({REPO_ROOT}/gateway/routes/chat.py:5);app (/x/site-packages/starlette/routing.py:10)"
    folded.write_text(
        f"{loop};{route};app (/x/site-packages/starlette/routing.py:12) 6\n"  # two lines of one function: one frame
        f"{loop};write ({REPO_ROOT}/gateway/audit.py:235) 3\n"
        f"{loop} 1\n"
    )
    assert summarise(folded) == {
        "self_by_package": [
            {"frame": "starlette", "share": 0.6},
            {"frame": "gateway", "share": 0.3},
            {"frame": "asyncio", "share": 0.1},
        ],
        "inclusive_project_frames": [
            {"frame": "chat (gateway/routes/chat.py)", "share": 0.6},
            {"frame": "write (gateway/audit.py)", "share": 0.3},
        ],
    }


def test_a_frame_names_its_function_and_file_without_the_line() -> None:
    assert _frame("send (/v/lib/python3.11/site-packages/httpx2/_client.py:1812)") == "send (httpx2/_client.py)"


def test_py_spy_samples_a_running_python_process(tmp_path: Path) -> None:
    """The profiler itself, on a real process: the busy function is the largest share."""
    busy = "import time\ndef spin():\n    while True: sum(range(1000))\nspin()\n"
    process = subprocess.Popen([sys.executable, "-c", busy])
    try:
        time.sleep(0.5)
        folded = tmp_path / "profile.folded"
        py_spy = Path(sys.executable).with_name("py-spy")
        command = [str(py_spy), "record", "--pid", str(process.pid), "--duration", "2", "--format", "raw"]
        command += ["--output", str(folded)]
        subprocess.run(command, check=True, capture_output=True, timeout=60)
    finally:
        process.kill()
        process.wait()
    assert summarise(folded)["self_by_package"][0] == {"frame": "<string>", "share": 1.0}
