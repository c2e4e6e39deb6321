"""The audit trail: records written by the real gateway before its answer, the keyed chain, tampering and forging
found, rotation, no identifiers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from gateway import audit, identity
from services.contract.paths import REPO_ROOT
from tests.dicom_files import SECRETS, from_jpeg
from tests.gateway.conftest import xray_message

SAMPLE = "person1946_bacteria_4874.jpeg"
API_KEY = "audit-test-key-0123456789"


def records(folder: Path) -> list[dict]:
    return [json.loads(line) for path in audit.chain_files(folder) for line in path.read_text().splitlines()]


def verify_cli(folder: Path, key_file: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "gateway", "audit", "verify", "--dir", str(folder), "--key-file", str(key_file)]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)


def test_the_gateway_records_who_what_outcome_and_a_keyed_study_hash(start_gateway, sample_images, tmp_path):
    folder, key_file = tmp_path / "trail", tmp_path / "secret" / "audit.key"
    gateway = start_gateway(GATEWAY_AUDIT_DIR=str(folder), GATEWAY_AUDIT_KEY_FILE=str(key_file), GATEWAY_API_KEYS=API_KEY)
    dicom = from_jpeg(sample_images[SAMPLE], "mono2-8bit", study_uid="1.2.826.0.1.3680043.8.498.4711")
    headers = {"authorization": f"Bearer {API_KEY}", "x-request-id": "audit-req-1"}
    body = {"model": "cxr-report", "messages": xray_message(dicom, mime="application/dicom")}
    answer = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=headers, timeout=300)
    assert answer.status_code == 200
    assert records(folder)[-1]["request_id"] == "audit-req-1"  # on disk before the client had the answer
    httpx.post(f"{gateway.url}/v1/chat/completions", json={"model": "nope", "messages": []}, timeout=30)  # no key: 401
    written = records(folder)
    first = next(r for r in written if r["request_id"] == "audit-req-1")
    assert first["actor"] == identity.key_id(API_KEY) and API_KEY not in json.dumps(written)
    assert first["endpoint"] == "/v1/chat/completions" and first["status"] == 200
    assert first["outcome"] == answer.json()["cxr"]["status"]
    assert {m["name"] for m in first["models"]} == {"report-llm", "chexfract", "pneumonia-classifier"}
    assert len(first["study"]) == 64 and "1.2.826.0.1.3680043.8.498.4711" not in json.dumps(written)
    assert written[-1]["status"] == 401 and written[-1]["outcome"] == "refused" and written[-1]["actor"] == "anonymous"
    trail = json.dumps(written) + "".join(p.read_text() for p in folder.iterdir())
    assert not [secret for secret in SECRETS if secret in trail]
    assert verify_cli(folder, key_file).returncode == 0
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_a_gateway_whose_key_does_not_seal_the_trail_refuses_to_start(start_gateway, tmp_path):
    write_chain(tmp_path / "trail", 3)
    (tmp_path / "other.key").write_text("another-key-" + "0" * 40)
    with pytest.raises(RuntimeError, match="not sealed by this audit key"):
        start_gateway(GATEWAY_AUDIT_DIR=str(tmp_path / "trail"), GATEWAY_AUDIT_KEY_FILE=str(tmp_path / "other.key"))
    with pytest.raises(RuntimeError, match="must not be inside GATEWAY_AUDIT_DIR"):
        start_gateway(GATEWAY_AUDIT_DIR=str(tmp_path / "trail"), GATEWAY_AUDIT_KEY_FILE=str(tmp_path / "trail" / "k"))


def test_the_session_trail_is_intact(stack, audit_dir, audit_key_file, client, sample_images):
    client.chat.completions.create(model="pneumonia-classifier", messages=xray_message(sample_images[SAMPLE]))
    result = verify_cli(audit_dir, audit_key_file)
    assert result.returncode == 0 and "intact" in result.stdout
    assert records(audit_dir)[-1]["endpoint"] == "/v1/chat/completions"


KEY = audit.AuditKey(b"k" * 32)


def write_chain(folder: Path, count: int, max_bytes: int = 1 << 20, key: audit.AuditKey = KEY) -> None:
    trail = audit.AuditTrail(folder, key, max_bytes)
    for n in range(count):
        trail.append(audit.AuditEvent(f"r{n}", "anonymous", "/v1/analyze", 200, "complete", [], None))


def test_changing_one_record_is_found_and_named(tmp_path):
    write_chain(tmp_path / "trail", 10)
    (tmp_path / "audit.key").write_text("k" * 32)
    path = tmp_path / "trail" / audit.ACTIVE_FILE
    lines = path.read_text().splitlines()
    changed = json.loads(lines[6])
    changed["outcome"] = "partial"
    lines[6] = json.dumps(changed)
    path.write_text("\n".join(lines) + "\n")
    result = verify_cli(tmp_path / "trail", tmp_path / "audit.key")
    assert result.returncode == 1 and "line 7 (seq 6)" in result.stdout and "changed" in result.stdout


def test_a_consistent_rewrite_without_the_key_is_found(tmp_path):
    """Who can write the trail but lacks the key re-seals every record after the one changed: still found."""
    write_chain(tmp_path, 6)
    path = tmp_path / audit.ACTIVE_FILE
    forged, prev, guessed = [], audit.GENESIS, audit.AuditKey(b"guessed-key-0123456789")
    for line in path.read_text().splitlines():
        record = json.loads(line)
        record["actor"] = "someone-else" if record["seq"] == 2 else record["actor"]
        record["prev"] = prev
        prev = record["hash"] = guessed.seal(record)
        forged.append(json.dumps(record))
    path.write_text("\n".join(forged) + "\n")
    assert "seal does not match" in str(audit.verify(tmp_path, KEY).broken)
    assert audit.verify(tmp_path, guessed).ok  # the forger's own key: only the trail's key tells


def test_removing_a_record_is_found(tmp_path):
    write_chain(tmp_path, 5)
    path = tmp_path / audit.ACTIVE_FILE
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2] + lines[3:]) + "\n")
    assert "sequence jumps from 1 to 3" in str(audit.verify(tmp_path, KEY).broken)


def test_rotation_keeps_the_chain_across_files_and_restarts(tmp_path):
    write_chain(tmp_path, 30, max_bytes=4096)
    write_chain(tmp_path, 5, max_bytes=4096)  # a restart continues the chain
    assert len(audit.chain_files(tmp_path)) > 2
    result = audit.verify(tmp_path, KEY)
    assert result.ok and result.records == 35 and result.first_seq == 0
    assert [r["seq"] for r in audit.records(tmp_path, after_seq=29)] == [30, 31, 32, 33, 34]


def test_the_study_hash_is_keyed(tmp_path):
    one, other = (audit.AuditTrail(tmp_path / n, audit.AuditKey(n.encode() * 32), 4096) for n in "ab")
    assert one.study_hash("1.2.3") != other.study_hash("1.2.3") and one.study_hash("1.2.3") == one.study_hash("1.2.3")


def test_records_arriving_together_are_written_by_one_sync_in_order(tmp_path):
    """Group commit: 50 concurrent records, each awaited until it is on disk, the chain intact and in seq order."""
    import asyncio

    trail = audit.AuditTrail(tmp_path, KEY, 1 << 20)
    events = [audit.AuditEvent(f"c{n}", "his", "/v1/analyze", 200, "complete", [], None) for n in range(50)]

    async def record_all() -> None:
        await asyncio.gather(*(trail.record(event) for event in events))

    asyncio.run(record_all())
    written = records(tmp_path)
    assert sorted(r["request_id"] for r in written) == sorted(e.request_id for e in events)
    assert [r["seq"] for r in written] == list(range(50)) and audit.verify(tmp_path, KEY).ok
