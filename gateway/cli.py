"""Command line: `serve` the gateway, `analyze` X-rays through a running one, `audit verify` the trail,
make and check `clients` of the clients file.

    python -m gateway analyze xray.jpeg --language zh --output result.json
    python -m gateway analyze /data/backlog/ --concurrency 8 --output results.jsonl --resume
    python -m gateway audit verify --dir logs/audit
    python -m gateway clients new-key his --permission analyze   # the key once, and its entry for the file
    python -m gateway clients check deploy/clients.yaml

`analyze` sends each image to POST /v1/analyze with bounded concurrency,
shows a progress bar, writes one JSON line per image (or one JSON document
for a single image and a `.json` output), skips images already answered in
the output when `--resume` is given, and reports failures per file without
stopping the batch. The exit code is 1 when any image failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml
from tqdm import tqdm

from gateway import audit, audit_export, identity
from gateway.settings import GatewaySettings

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".dcm", ".dicom")  # in folders; a file named directly is sent as it is


def collect_images(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            found.append(path)
    return found


def already_done(output: Path) -> set[str]:
    if not output.exists():
        return set()
    done = set()
    for line in output.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by an interrupted run is simply redone
        if record.get("ok"):
            done.add(record["file"])
    return done


async def analyze_one(client: httpx.AsyncClient, image: Path, language: str | None) -> dict[str, Any]:
    try:
        files = {"file": (image.name, await asyncio.to_thread(image.read_bytes), "application/octet-stream")}
        data = {"language": language} if language else {}
        response = await client.post("/v1/analyze", files=files, data=data)
    except (OSError, httpx.HTTPError) as error:
        return {"file": str(image), "ok": False, "status": None, "error": f"{type(error).__name__}: {error}"}
    if response.status_code != 200:
        try:
            reason = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            reason = response.text[:300]
        return {"file": str(image), "ok": False, "status": response.status_code, "error": reason}
    return {"file": str(image), "ok": True, "status": 200, **response.json()}


def summary_line(record: dict[str, Any]) -> str:
    name = Path(record["file"]).name
    if not record["ok"]:
        return f"FAILED  {name}: {record['status'] or '-'} {record['error']}"
    cxr = record["cxr"]
    c = cxr["classification"]
    fracture = cxr["fracture"]
    suspected = "n/a" if fracture is None else ("yes" if fracture["suspected"] else "no")
    return (
        f"{cxr['status']:<8} {name}: {c['predicted_class']} {c['confidence']:.1%}, "
        f"risk {cxr['risk_level']['code']}, fracture suspected: {suspected}"
    )


async def run_batch(args: argparse.Namespace) -> int:
    images = collect_images(args.images)
    single_json = len(images) == 1 and args.output is not None and args.output.suffix == ".json"
    done = already_done(args.output) if args.resume and args.output and not single_json else set()
    todo = [image for image in images if str(image) not in done]
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    semaphore = asyncio.Semaphore(args.concurrency)
    failures = 0
    sink = args.output.open("a" if args.resume else "w") if args.output and not single_json else None
    timeout = httpx.Timeout(args.timeout, connect=10.0)
    async with httpx.AsyncClient(base_url=args.url, headers=headers, timeout=timeout, trust_env=False) as client:

        async def bounded(image: Path) -> dict[str, Any]:
            async with semaphore:
                return await analyze_one(client, image, args.language)

        with tqdm(total=len(todo), unit="image", disable=len(todo) < 2, file=sys.stderr) as progress:
            for finished in asyncio.as_completed([bounded(image) for image in todo]):
                record = await finished
                failures += not record["ok"]
                progress.write(summary_line(record), file=sys.stdout)
                progress.update()
                if sink:
                    sink.write(json.dumps(record, ensure_ascii=False) + "\n")
                    sink.flush()
                elif single_json:
                    args.output.write_text(json.dumps(record, ensure_ascii=False, indent=2) + "\n")
                if len(todo) == 1 and record["ok"]:
                    print("\n" + record["report"] + "\n\n" + record["cxr"]["disclaimer"])
    if sink:
        sink.close()
    print(f"{len(todo) - failures} analysed, {failures} failed, {len(done)} skipped (already in the output)", file=sys.stderr)
    return 1 if failures else 0


def serve() -> int:
    from gateway import server
    from services.contract import jsonlog

    settings = GatewaySettings()
    jsonlog.configure(settings.log_level)
    server.serve(settings)
    return 0


def verify_audit(folder: Path, key_file: Path) -> int:
    """Exit 0 when the chain is intact under the key, 1 naming the first broken record, 2 without a trail or key."""
    if not audit.chain_files(folder):
        print(f"no audit trail in {folder}", file=sys.stderr)
        return 2
    try:
        key = audit.read_key(key_file)
    except (OSError, ValueError) as error:
        print(f"the audit key {key_file} cannot be read: {error}", file=sys.stderr)
        return 2
    result = audit.verify(folder, key)
    if not result.ok:
        print(f"BROKEN after {result.records} intact records: {result.broken}")
        return 1
    print(f"intact: {result.records} records, seq {result.first_seq} to {(result.first_seq or 0) + result.records - 1}")
    return 0


def new_client(name: str, permissions: list[str]) -> int:
    """A new key on stderr (shown once, never stored) and the client's entry for the clients file on stdout."""
    key = identity.new_key()
    spec = identity.ClientSpec(name=name, key_hashes=[identity.hash_key(key)], permissions=frozenset(permissions))
    print(f"key for {name} (give it to the client; it is not stored anywhere): {key}", file=sys.stderr)
    entry = spec.model_dump(mode="json", include={"name", "key_hashes", "permissions"})
    entry["permissions"] = sorted(entry["permissions"])
    print(yaml.safe_dump({"clients": [entry]}, sort_keys=False), end="")
    return 0


def check_clients(path: Path) -> int:
    try:
        clients = identity.read_clients_file(path).clients
    except identity.ClientsFileInvalid as error:
        print(f"refused: {error}")
        return 1
    for client in clients:
        print(f"{client.name}: {', '.join(sorted(client.permissions))}; {len(client.key_hashes)} key(s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the gateway (settings from GATEWAY_* variables)")
    batch = sub.add_parser("analyze", help="analyse X-rays through a running gateway")
    batch.add_argument("images", nargs="+", type=Path, help="image files or folders")
    batch.add_argument("--url", default=os.environ.get("CXR_URL", "http://127.0.0.1:8080"))
    batch.add_argument("--api-key", default=os.environ.get("CXR_API_KEY"))
    batch.add_argument("--language", choices=["zh", "en"])
    batch.add_argument("--output", type=Path, help="result.json for one image, or results.jsonl")
    batch.add_argument("--concurrency", type=int, default=4)
    batch.add_argument("--resume", action="store_true", help="skip images already answered in --output")
    batch.add_argument("--timeout", type=float, default=600.0, help="seconds per image")
    audit_cmd = sub.add_parser("audit", help="the audit trail")
    audit_sub = audit_cmd.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser("verify", help="check the sealed chain; name the first broken record")
    for option, setting in (("--dir", "audit_dir"), ("--key-file", "audit_key_file")):
        variable = f"GATEWAY_{setting.upper()}"
        default = os.environ.get(variable, str(GatewaySettings.model_fields[setting].default))
        verify.add_argument(option, type=Path, default=Path(default), help=f"default: {variable}, else {default}")
    clients_cmd = sub.add_parser("clients", help="the clients file (GATEWAY_CLIENTS_FILE)")
    clients_sub = clients_cmd.add_subparsers(dest="clients_command", required=True)
    new_key = clients_sub.add_parser("new-key", help="a new key for a client, and its entry for the file")
    new_key.add_argument("name")
    new_key.add_argument("--permission", action="append", choices=[p.value for p in identity.Permission], required=True)
    check = clients_sub.add_parser("check", help="validate a clients file as the gateway would")
    check.add_argument("file", type=Path)
    export = audit_sub.add_parser("export", help="the trail as FHIR AuditEvents (BALP), one JSON per line")
    export.add_argument("--dir", type=Path, default=verify.get_default("dir"), help="the audit folder")
    export.add_argument("--after", type=int, default=-1, help="only records with a seq above this")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve()
    if args.command == "clients":
        return new_client(args.name, args.permission) if args.clients_command == "new-key" else check_clients(args.file)
    if args.command == "audit" and args.audit_command == "export":
        for record in audit.records(args.dir, args.after):
            print(json.dumps(audit_export.fhir_audit_event(record), ensure_ascii=False))
        return 0
    if args.command == "audit":
        return verify_audit(args.dir, args.key_file)
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    return asyncio.run(run_batch(args))
