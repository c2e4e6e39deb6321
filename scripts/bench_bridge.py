"""The bridge's latency, C-STORE in to results out: `python -m scripts.bench_bridge` beside a running `make run`.

Starts a bridge of its own (free ports, a fresh state folder) in front of the running gateway, sending the
SR by C-STORE to a real Orthanc (scripts/peers/orthanc.py) and the ORU^R01 to hl7apy's MLLP server
(scripts/peers/ris.py), both on loopback. Then, from the bridge's own state database:
- C-STORE received (the instance's `received_at`, written before Success) → the SR stored in the PACS
  (C-STORE Success) and → the ORU acknowledged (AA), each delivery's `delivered_at`;
- the gateway's own time for the same image (the answer's stage timings: the pipeline from start to end),
so the rest (end to end minus the gateway's time: the bridge's own work, and in a burst the wait in its queue
for the gateway, CXR_BRIDGE_CONCURRENCY images at a time) is visible beside it.
Two phases: one image at a time (--single, 5), and a burst sent in one association (--burst, 50).
Prints a table and writes bench/results/bridge_latency.json. A benchmark, never a test.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian, generate_uid

from scripts import benchlib
from scripts.launcher.process import free_port
from scripts.peers import orthanc
from scripts.peers.ris import RisPeer
from services.contract.paths import REPO_ROOT

SAMPLE = REPO_ROOT / "models" / "samples" / "person1946_bacteria_4874.jpeg"
RESULTS = REPO_ROOT / "bench" / "results" / "bridge_latency.json"


def _x_ray(jpeg: bytes) -> bytes:
    """A chest DX of the sample picture, with new UIDs and no patient data (a benchmark's, not a test's)."""
    grey = np.asarray(Image.open(io.BytesIO(jpeg)).convert("L"))
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = DigitalXRayImageStorageForPresentation
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.BodyPartExamined, ds.PatientID, ds.PatientName = "DX", "CHEST", "BENCH", "Bench^Image"
    ds.Rows, ds.Columns = grey.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = grey.tobytes()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]  # nearest rank


class Bench:
    def __init__(self, folder: Path, gateway_url: str) -> None:
        self.pacs = orthanc.Orthanc(folder / "pacs")
        self.ris = RisPeer()
        self.port, self.state = free_port(), folder / "bridge"
        self.files = folder / "images"
        self.files.mkdir()
        self.env = {
            **os.environ,
            "CXR_BRIDGE_PORT": str(self.port),
            "CXR_BRIDGE_HTTP_PORT": str(free_port()),
            "CXR_BRIDGE_STATE_DIR": str(self.state),
            "CXR_BRIDGE_GATEWAY_URL": gateway_url,
            "CXR_BRIDGE_SR_HOST": "127.0.0.1",
            "CXR_BRIDGE_SR_AE_TITLE": orthanc.Orthanc.ae_title,
            "CXR_BRIDGE_RIS_HOST": "127.0.0.1",
            "CXR_BRIDGE_RIS_PORT": str(self.ris.port),
        }
        self.log = (folder / "bridge.log").open("ab")
        self.bridge: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.pacs.start()
        self.env["CXR_BRIDGE_SR_PORT"] = str(self.pacs.dicom_port)
        self.ris.start()
        self.bridge = subprocess.Popen([sys.executable, "-m", "services.bridge"], env=self.env, stdout=self.log, stderr=self.log)
        time.sleep(3)
        echo = subprocess.run(["echoscu", "-aec", "CXRSERVE", "127.0.0.1", str(self.port)], capture_output=True, timeout=30)
        if echo.returncode:
            raise SystemExit("the bridge did not answer C-ECHO")

    def stop(self) -> None:
        if self.bridge is not None:
            self.bridge.terminate()
            self.bridge.wait(timeout=60)
        self.ris.stop()
        self.pacs.stop()

    def send(self, count: int) -> list[str]:
        paths: list[str] = []
        for _ in range(count):
            written = self.files / f"{len(list(self.files.iterdir()))}.dcm"
            written.write_bytes(_x_ray(SAMPLE.read_bytes()))
            paths.append(str(written))
        sops = [str(dcmread(path, stop_before_pixels=True).SOPInstanceUID) for path in paths]
        store = ["storescu", "-aec", "CXRSERVE", "127.0.0.1", str(self.port), *paths]  # one association
        subprocess.run(store, check=True, capture_output=True, timeout=600)
        return sops

    def wait_delivered(self, sops: list[str], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len([row for row in self.rows(sops) if row["sr_ms"] is not None and row["oru_ms"] is not None]) == len(sops):
                return
            time.sleep(0.2)
        raise SystemExit(f"not every result delivered within {timeout_s:g} s (see the bridge's log)")

    def rows(self, sops: list[str]) -> list[dict[str, float | None]]:
        with sqlite3.connect(f"file:{self.state / 'state.sqlite3'}?mode=ro", uri=True) as db:
            found = []
            for sop in sops:
                received, result = db.execute(
                    "SELECT received_at, result FROM instances WHERE sop_instance_uid = ?", (sop,)
                ).fetchone() or (None, None)
                delivered = dict(
                    db.execute(
                        "SELECT destination, delivered_at FROM deliveries WHERE sop_instance_uid = ? AND state = 'delivered'",
                        (sop,),
                    ).fetchall()
                )
                found.append(_row(received, result, delivered))
        return found


def _row(received: float | None, result: str | None, delivered: dict[str, float]) -> dict[str, float | None]:
    def since(at: float | None) -> float | None:
        return None if at is None or received is None else (at - received) * 1000

    gateway = None
    if result:
        timings = json.loads(result)["cxr"]["timings_ms"].values()
        gateway = max(t["started_ms"] + t["duration_ms"] for t in timings)
    return {"sr_ms": since(delivered.get("pacs-dimse")), "oru_ms": since(delivered.get("ris")), "gateway_ms": gateway}


def _summary(phase: str, rows: list[dict[str, float | None]]) -> dict[str, object]:
    column = {key: [float(row[key] or 0) for row in rows] for key in ("sr_ms", "oru_ms", "gateway_ms")}
    overhead = [sr - gateway for sr, gateway in zip(column["sr_ms"], column["gateway_ms"], strict=True)]
    summary: dict[str, object] = {"phase": phase, "images": len(rows)}
    for key, values in {**column, "bridge_overhead_ms": overhead}.items():
        summary[key] = {"p50": round(_percentile(values, 0.5), 1), "p95": round(_percentile(values, 0.95), 1)}
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gateway-url", default="http://127.0.0.1:8080", help="a running gateway (make run's)")
    parser.add_argument("--single", type=int, default=5, help="images sent one at a time")
    parser.add_argument("--burst", type=int, default=50, help="images sent at once, in one association")
    args = parser.parse_args()
    if not orthanc.installed():
        raise SystemExit(f"the benchmark's PACS is Debian's Orthanc: {orthanc.INSTALL}")
    if httpx.get(f"{args.gateway_url}/ready", timeout=30).status_code != 200:
        raise SystemExit(f"the gateway at {args.gateway_url} is not ready: start `make run` first")
    with tempfile.TemporaryDirectory() as folder:
        bench = Bench(Path(folder), args.gateway_url)
        bench.start()
        try:
            single: list[dict[str, float | None]] = []
            for _ in range(args.single):
                sops = bench.send(1)
                bench.wait_delivered(sops, 600)
                single += bench.rows(sops)
            burst_sops = bench.send(args.burst)
            bench.wait_delivered(burst_sops, 3600)
            burst = bench.rows(burst_sops)
        finally:
            bench.stop()
    phases = [_summary("one at a time", single), _summary(f"burst of {args.burst}", burst)]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": benchlib.machine(), "phases": phases}, indent=1) + "\n")
    columns = ["C-STORE → SR stored", "→ ORU ACKed", "gateway's own time", "the rest (bridge, queue)"]
    print("| phase | images | " + " | ".join(f"{name} p50 / p95" for name in columns) + " |")
    print("|---|---|---|---|---|---|")
    for phase in phases:
        cells = []
        for key in ("sr_ms", "oru_ms", "gateway_ms", "bridge_overhead_ms"):
            p50, p95 = phase[key]["p50"], phase[key]["p95"]  # type: ignore[index]
            cells.append(f"{p50 / 1000:.2f} s / {p95 / 1000:.2f} s")
        print(f"| {phase['phase']} | {phase['images']} | " + " | ".join(cells) + " |")
    print(f"written: {RESULTS.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
