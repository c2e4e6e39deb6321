"""`python -m gateway analyze`: one image, a folder with --concurrency, --resume, and per-file failures."""

import json
import shutil
import subprocess
import sys

from services.contract.paths import REPO_ROOT
from tests.conftest import SAMPLES, gateway_url


def analyze(stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "analyze", "--url", gateway_url(stack), *args],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO_ROOT,
    )


def test_one_image_to_json(stack, tmp_path):
    out = tmp_path / "result.json"
    result = analyze(stack, str(SAMPLES / "person1946_bacteria_4874.jpeg"), "--language", "zh", "--output", str(out))
    assert result.returncode == 0, result.stderr
    record = json.loads(out.read_text())
    assert record["ok"] and record["cxr"]["language"] == "zh"
    assert "PNEUMONIA" in result.stdout  # the readable summary line
    assert record["report"] in result.stdout


def test_folder_batch_with_failures_and_resume(stack, tmp_path):
    folder = tmp_path / "backlog"
    folder.mkdir()
    for name in ("NORMAL2-IM-1427-0001.jpeg", "person1947_bacteria_4876.jpeg"):
        shutil.copy(SAMPLES / name, folder / name)
    (folder / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "results.jsonl"
    first = analyze(stack, str(folder), "--concurrency", "2", "--output", str(out))
    assert first.returncode == 1  # one file failed, the batch went on
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 3
    failed = [r for r in records if not r["ok"]]
    assert [r["file"].endswith("broken.png") and r["status"] == 400 for r in failed] == [True]
    second = analyze(stack, str(folder), "--output", str(out), "--resume")
    assert "2 skipped" in second.stderr
    assert len(out.read_text().splitlines()) == 4  # only the failed file was sent again
