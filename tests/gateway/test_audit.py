"""The audit trail: records written by the real gateway, the hash chain, tampering found, rotation, no identifiers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

from gateway import audit
from services.contract.paths import REPO_ROOT
from tests.dicom_files import SECRETS, from_jpeg
from tests.gateway.conftest import xray_message

SAMPLE = "person1946_bacteria_4874.jpeg"
API_KEY = "audit-test-key-0123456789"


def records(folder: Path) -> list[dict]:
    return [json.loads(line) for path in audit.chain_files(folder) for line in path.read_text().splitlines()]


def verify_cli(folder: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "gateway", "audit", "verify", "--dir", str(folder)]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)


def test_the_gateway_records_who_what_outcome_and_a_keyed_study_hash(start_gateway, sample_images, tmp_path):
    folder = tmp_path / "trail"
    gateway = start_gateway(GATEWAY_AUDIT_DIR=str(folder), GATEWAY_API_KEYS=API_KEY)
    dicom = from_jpeg(sample_images[SAMPLE], "mono2-8bit", study_uid="1.2.826.0.1.3680043.8.498.4711")
    headers = {"authorization": f"Bearer {API_KEY}", "x-request-id": "audit-req-1"}
    body = {"model": "cxr-report", "messages": xray_message(dicom, mime="application/dicom")}
    answer = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=headers, timeout=300)
    assert answer.status_code == 200
    httpx.post(f"{gateway.url}/v1/chat/completions", json={"model": "nope", "messages": []}, timeout=30)  # no key: 401
    deadline = time.monotonic() + 10  # a record is written once the answer has gone out: a moment after the client has it
    while (written := records(folder))[-1]["status"] != 401 and time.monotonic() < deadline:
        time.sleep(0.1)
    first = next(r for r in written if r["request_id"] == "audit-req-1")
    assert first["actor"] == audit.key_id(API_KEY) and API_KEY not in json.dumps(written)
    assert first["endpoint"] == "/v1/chat/completions" and first["status"] == 200
    assert first["outcome"] == answer.json()["cxr"]["status"]
    assert {m["name"] for m in first["models"]} == {"report-llm", "chexfract", "pneumonia-classifier"}
    assert len(first["study"]) == 64 and "1.2.826.0.1.3680043.8.498.4711" not in json.dumps(written)
    assert written[-1]["status"] == 401 and written[-1]["outcome"] == "refused" and written[-1]["actor"] == "anonymous"
    trail = json.dumps(written) + "".join(p.read_text() for p in folder.iterdir())
    assert not [secret for secret in SECRETS if secret in trail]
    assert verify_cli(folder).returncode == 0


def test_the_session_trail_is_intact(stack, audit_dir, client, sample_images):
    client.chat.completions.create(model="pneumonia-classifier", messages=xray_message(sample_images[SAMPLE]))
    result = verify_cli(audit_dir)
    assert result.returncode == 0 and "intact" in result.stdout
    assert records(audit_dir)[-1]["endpoint"] == "/v1/chat/completions"


def write_chain(folder: Path, count: int, max_bytes: int = 1 << 20) -> None:
    trail = audit.AuditTrail(folder, b"k" * 32, max_bytes)
    for n in range(count):
        trail.append(audit.AuditEvent(f"r{n}", "anonymous", "/v1/analyze", 200, "complete", [], None))


def test_changing_one_record_is_found_and_named(tmp_path):
    write_chain(tmp_path, 10)
    path = tmp_path / audit.ACTIVE_FILE
    lines = path.read_text().splitlines()
    changed = json.loads(lines[6])
    changed["outcome"] = "partial"
    lines[6] = json.dumps(changed)
    path.write_text("\n".join(lines) + "\n")
    result = verify_cli(tmp_path)
    assert result.returncode == 1 and "line 7 (seq 6)" in result.stdout and "changed" in result.stdout


def test_removing_a_record_is_found(tmp_path):
    write_chain(tmp_path, 5)
    path = tmp_path / audit.ACTIVE_FILE
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2] + lines[3:]) + "\n")
    assert "sequence jumps from 1 to 3" in str(audit.verify(tmp_path).broken)


def test_rotation_keeps_the_chain_across_files_and_restarts(tmp_path):
    write_chain(tmp_path, 30, max_bytes=4096)
    write_chain(tmp_path, 5, max_bytes=4096)  # a restart continues the chain
    assert len(audit.chain_files(tmp_path)) > 2
    result = audit.verify(tmp_path)
    assert result.ok and result.records == 35 and result.first_seq == 0


def test_the_study_hash_is_keyed(tmp_path):
    one, other = audit.AuditTrail(tmp_path / "a", b"a" * 32, 4096), audit.AuditTrail(tmp_path / "b", b"b" * 32, 4096)
    assert one.study_hash("1.2.3") != other.study_hash("1.2.3") and one.study_hash("1.2.3") == one.study_hash("1.2.3")
