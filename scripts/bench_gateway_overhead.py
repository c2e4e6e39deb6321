"""The gateway's own cost, isolated: `python -m scripts.bench_gateway_overhead` (issue 30's first step, "profile first").

A real model costs ~200 ms a request here, so subtracting two pipelines' medians cannot resolve a gateway's
milliseconds. This puts a *null upstream* behind the gateway: an OpenAI-compatible server that answers every
chat completion at once with the same one-token answer (`NullUpstream` below; a benchmark instrument, never used
in a test of behaviour, and nothing a client could mistake for a model). Side by side in one run:

- sequential: `--requests` requests alternating between the upstream direct and the same request through the
  gateway (pass-through to the report role), one connection each; added p50 and p99 (the gateway's percentiles
  less the direct ones), for plain answers (time to the last byte) and streamed ones (to the first byte);
- where the added time goes: `--requests`/2 plain requests on each of these in turn: direct, the gateway, the
  same gateway with its audit trail on tmpfs (where fsync returns at once: the difference is the fsync of the
  audit record the gateway writes before an answer's last byte), and three floors on the gateway's uvicorn
  (`floor_app`: FastAPI answering itself, and relaying with httpx2 or with aiohttp), the least any FastAPI
  service or proxy adds here;
- throughput at 32 and 128 concurrent requests, through the gateway against direct, as a ratio;
- `pneumonia-classifier`: `--requests`/8 sequential X-rays alternating between the real classifier worker's own
  `/classify` (given the JPEG) and the gateway (given the same JPEG as a data URL), the worker on core 1.

The gateway runs on core 0 and the upstream and the client on the other (`taskset`), so the gateway's work is
what the clock sees. Writes bench/results/gateway_overhead.json and prints each target with its figures.

`--profile` adds a phase of its own after the timed ones (sampling slows what it samples): py-spy samples the
gateway at 250 Hz for 20 s of sequential pass-through requests, counting only the samples of a thread that
holds the GIL (Python at work: a thread waiting on a lock or in fsync is not); their shares by package
(where the innermost frame is) and by the project's own functions (with all they call) go into the JSON and
the printout; the samples themselves are in logs/bench/gateway-overhead/profile.folded (py-spy's raw format,
for a flame graph).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import httpx2
import uvicorn
from fastapi import FastAPI, Request, Response

from gateway.images import decode_data_uri
from scripts.benchlib import machine, markdown_table, straddles, target
from scripts.launcher import config
from scripts.launcher.commands import classifier_env, gateway_env
from scripts.launcher.process import free_port
from services.contract import images
from services.contract.classifier_model import ModelMetadata
from services.contract.paths import REPO_ROOT

RESULTS = REPO_ROOT / "bench" / "results" / "gateway_overhead.json"
PROFILE_S, PROFILE_RATE_HZ, PROFILE_TOP = 20, 250, 25
GATEWAY_CORE, UPSTREAM_CORE = 0, 1
TMPFS = Path("/dev/shm")
TMPFS_SIDE = "gateway, audit on tmpfs"
WORKER_SIDE, CLASSIFIER_MODEL = "classifier worker", "pneumonia-classifier"
# The floors: the least a FastAPI service on the gateway's uvicorn can do here, measured beside the gateway.
FLOORS = {
    "floor: FastAPI answering itself": "echo",
    "floor: FastAPI relaying with httpx2": "httpx2",
    "floor: FastAPI relaying with aiohttp": "aiohttp",
}
ANSWER = {
    "id": "null",
    "object": "chat.completion",
    "created": 0,
    "model": "null-upstream",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "length"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}
STREAM = (
    'data: {"id":"null","object":"chat.completion.chunk","created":0,"model":"null-upstream",'
    '"choices":[{"index":0,"delta":{"role":"assistant","content":"ok"},"finish_reason":null}]}\n\n'
    'data: {"id":"null","object":"chat.completion.chunk","created":0,"model":"null-upstream",'
    '"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}\n\ndata: [DONE]\n\n'
)


class NullUpstream(asyncio.Protocol):
    """HTTP/1.1 with keep-alive, just enough of it: every POST gets the one-token answer (SSE when asked to
    stream), GET /health 200, GET /v1/models the one model. Bodies are read by Content-Length, never parsed
    beyond the `"stream": true` it looks for."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, rest = self.buffer.split(b"\r\n\r\n", 1)
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(rest) < length:
                return
            body, self.buffer = rest[:length], rest[length:]
            self._answer(head.split(b" ", 2)[1], body)

    def _answer(self, path: bytes, body: bytes) -> None:
        if b'"stream":true' in body.replace(b" ", b""):
            payload, kind = STREAM.encode(), b"text/event-stream"
        elif path.endswith(b"/models"):
            payload, kind = json.dumps({"object": "list", "data": [{"id": "report-llm", "object": "model"}]}).encode(), b""
        else:
            payload, kind = json.dumps(ANSWER).encode(), b"application/json"
        headers = b"HTTP/1.1 200 OK\r\ncontent-type: " + (kind or b"application/json") + b"\r\n"
        self.transport.write(headers + b"content-length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)


def serve_null_upstream(port: int) -> None:
    async def run() -> None:
        server = await asyncio.get_running_loop().create_server(NullUpstream, "127.0.0.1", port)
        await server.serve_forever()

    asyncio.run(run())


def floor_app(kind: str, upstream: str) -> FastAPI:
    """A measuring instrument, never the product: one route on FastAPI, answering the null upstream's bytes
    itself (`echo`) or relaying the body to it with a pooled client (`httpx2`, `aiohttp`), as a minimal proxy
    would: no admission, audit, access control, request id or logging. What the gateway adds above these
    is its own work; what these add over direct is the framework's and the client's, on this core."""
    answer, headers = json.dumps(ANSWER).encode(), {"content-type": "application/json"}
    url = f"{upstream}/v1/chat/completions"

    async def echo(body: bytes) -> Response:
        return Response(answer, media_type="application/json")

    async def with_httpx2(body: bytes) -> Response:
        relayed = await httpx2_client.post("/v1/chat/completions", content=body, headers=headers)
        return Response(relayed.content, status_code=relayed.status_code, media_type=relayed.headers["content-type"])

    async def with_aiohttp(body: bytes) -> Response:
        async with sessions[0].post(url, data=body, headers=headers) as relayed:
            content = await relayed.read()
            return Response(content, status_code=relayed.status, media_type=relayed.content_type)

    limits = httpx2.Limits(max_keepalive_connections=256)
    httpx2_client = httpx2.AsyncClient(base_url=upstream, trust_env=False, limits=limits)
    sessions: list[aiohttp.ClientSession] = []  # aiohttp's is made on the server's loop, in the lifespan

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
            sessions.append(session)
            yield

    handle = {"echo": echo, "httpx2": with_httpx2, "aiohttp": with_aiohttp}[kind]
    app = FastAPI(openapi_url=None, lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await handle(await request.body())

    return app


def _wait(url: str, process: subprocess.Popen[bytes], health: str = "/health") -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: exited {process.returncode}")
        try:
            if httpx.get(f"{url}{health}", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise TimeoutError(url)


def _gateway(port: int, ports: dict[str, int], audit: Path, log: Path) -> subprocess.Popen[bytes]:
    stack = config.load("cpu", env={})
    env = {
        **os.environ,
        **gateway_env(stack),
        "GATEWAY_PORT": str(port),
        "GATEWAY_REPORT_URL": f"http://127.0.0.1:{ports['direct']}",
        "GATEWAY_CLASSIFIER_URL": f"http://127.0.0.1:{ports[WORKER_SIDE]}",
        "GATEWAY_AUDIT_DIR": str(audit),
        "GATEWAY_AUDIT_KEY_FILE": str(audit.parent / "audit.key"),
        "GATEWAY_LOG_LEVEL": "warning",
        # The null upstream has no capacity to protect: admission never refuses, so throughput is the gateway's.
        "GATEWAY_REPORT_MAX_CONCURRENCY": "1024",
    }
    return subprocess.Popen(
        ["taskset", "-c", str(GATEWAY_CORE), sys.executable, "-m", "gateway", "serve"],
        cwd=REPO_ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def _worker(port: int, log: Path) -> subprocess.Popen[bytes]:
    """The real classifier worker (ONNX Runtime on the CPU), as the cpu profile runs it, on the upstream's core."""
    env = {**os.environ, **classifier_env(config.load("cpu", env={}).roles["classifier"]), "CLASSIFIER_PORT": str(port)}
    command = ["taskset", "-c", str(UPSTREAM_CORE), sys.executable, "-m", "services.classifier"]
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def start(ports: dict[str, int], logs: Path, tmpfs: Path) -> list[subprocess.Popen[bytes]]:
    """The null upstream, the gateway (its audit trail in logs/, on this machine's disk), the same gateway with its
    audit trail on tmpfs (an fsync there returns at once), the floors, and the real classifier worker; the upstream
    and the worker on their own core, the rest on the gateway's."""
    command = [sys.executable, "-m", "scripts.bench_gateway_overhead", "--upstream", str(ports["direct"])]
    upstream = subprocess.Popen(["taskset", "-c", str(UPSTREAM_CORE), *command], cwd=REPO_ROOT)
    gateway = _gateway(ports["gateway"], ports, logs / "audit", logs / "gateway.log")
    in_memory = _gateway(ports[TMPFS_SIDE], ports, tmpfs / "audit", logs / "gateway-tmpfs-audit.log")
    floors = [
        subprocess.Popen(
            ["taskset", "-c", str(GATEWAY_CORE), *command, "--floor", kind, "--port", str(ports[side])], cwd=REPO_ROOT
        )
        for side, kind in FLOORS.items()
    ]
    worker = _worker(ports[WORKER_SIDE], logs / "classifier.log")
    processes = dict(zip(ports, [upstream, gateway, in_memory, *floors, worker], strict=True))  # in the order of `ports`
    for name, process in processes.items():
        _wait(f"http://127.0.0.1:{ports[name]}", process, "/v2/health/ready" if name == WORKER_SIDE else "/health")
    return list(processes.values())


def body(stream: bool) -> dict:
    return {"model": "report-llm", "messages": [{"role": "user", "content": "Reply OK."}], "max_tokens": 1, "stream": stream}


def sequential(urls: dict[str, str], requests: int, stream: bool) -> dict[str, list[float]]:
    """Seconds per answer, each side in turn (direct, the gateway, ...): to its last byte for a plain answer (all
    a client can use), to its first for a streamed one (when the client sees the answer begin)."""
    seconds: dict[str, list[float]] = {name: [] for name in urls}
    clients = {name: httpx.Client(base_url=url, timeout=30) for name, url in urls.items()}
    payload = body(stream)
    names = list(urls)
    for i in range(requests * len(names)):
        name = names[i % len(names)]
        started = time.perf_counter()
        with clients[name].stream("POST", "/v1/chat/completions", json=payload) as response:
            chunks = response.iter_raw()
            next(chunks)
            first = time.perf_counter() - started
            for _ in chunks:
                pass
        assert response.status_code == 200, response.status_code
        seconds[name].append(first if stream else time.perf_counter() - started)
    return seconds


def _sample_xrays() -> list[bytes]:
    return [path.read_bytes() for path in sorted((REPO_ROOT / "models" / "samples").glob("*.jpeg"))]


def classifier_sequential(worker: str, gateway: str, requests: int) -> dict[str, list[float]]:
    """Seconds to the answer, alternating, the sample X-rays in turn: the worker's own `/classify` given the JPEG
    (it decodes, preprocesses and infers) and the gateway's `pneumonia-classifier` given the same JPEG as a data
    URL (the gateway decodes and preprocesses, the worker infers): the same work on each side but for the
    gateway's layers, the data URL's base64 and JSON, and one more hop."""
    xrays = _sample_xrays()
    seconds: dict[str, list[float]] = {"direct": [], "gateway": []}
    with httpx.Client(timeout=60) as client:
        for i in range(requests):
            image = xrays[i % len(xrays)]
            url = "data:image/jpeg;base64," + base64.b64encode(image).decode()
            content = [{"type": "image_url", "image_url": {"url": url}}]
            chat = {"model": CLASSIFIER_MODEL, "messages": [{"role": "user", "content": content}]}
            for side in ("direct", "gateway"):
                started = time.perf_counter()
                if side == "direct":
                    response = client.post(f"{worker}/classify", content=image, headers={"content-type": "image/jpeg"})
                else:
                    response = client.post(f"{gateway}/v1/chat/completions", json=chat)
                assert response.status_code == 200, (side, response.status_code, response.text[:200])
                seconds[side].append(time.perf_counter() - started)
    return seconds


def image_steps(requests: int) -> dict[str, list[float]]:
    """Seconds for the gateway's own steps with a classifier X-ray, run here on the samples: reading the data URL's
    base64 (only the gateway pays it) and decoding and preprocessing the JPEG (each side pays it once)."""
    metadata = ModelMetadata.read_folder(REPO_ROOT / "models" / CLASSIFIER_MODEL)
    xrays = _sample_xrays()
    urls = ["data:image/jpeg;base64," + base64.b64encode(image).decode() for image in xrays]
    steps: dict[str, Callable[[int], object]] = {
        "base64 of the data URL": lambda i: decode_data_uri(urls[i % len(urls)], 1 << 30),
        "decoding and preprocessing": lambda i: images.prepare(xrays[i % len(xrays)], metadata.input, 1 << 30),
    }
    seconds: dict[str, list[float]] = {name: [] for name in steps}
    for name, step in steps.items():
        for i in range(requests):
            started = time.perf_counter()
            step(i)
            seconds[name].append(time.perf_counter() - started)
    return seconds


async def _throughput(url: str, concurrency: int, requests: int) -> float:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        remaining = requests
        payload = body(False)

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                response = await client.post("/v1/chat/completions", json=payload)
                assert response.status_code == 200, response.status_code

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return requests / (time.perf_counter() - started)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def added_ms(seconds: dict[str, list[float]], share: float, side: str = "gateway") -> float:
    return (percentile(seconds[side], share) - percentile(seconds["direct"], share)) * 1000


def _frame(frame: str) -> str:
    """`function (path:line)` as `function (path)`, the path from the package folder: every line of a function counts as one."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    for root in ("site-packages/", "lib/python3.11/", f"{REPO_ROOT}/"):
        path = path.split(root, 1)[-1]
    return f"{name} ({path})"


# The modules that start the gateway, under which every request runs: no news in a profile.
STARTS = ("(gateway/__main__.py)", "(gateway/cli.py)", "(gateway/server.py)")


def _package(frame: str) -> str:
    """The package (or standard-library module) a frame's file belongs to: `starlette`, `gateway`, `asyncio`..."""
    path = frame.rpartition(" (")[2].removesuffix(")")
    return path.split("/", 1)[0].removesuffix(".py") if "/" in path or path.endswith(".py") else path


def summarise(folded: Path) -> dict[str, list[dict[str, Any]]]:
    """Where the gateway's busy samples are: by the package of the innermost frame (its own work, `self`), and
    the project's own functions with everything they call (`inclusive`), largest first."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [_frame(f) for f in stack.split(";") if f]
        total += int(count)
        own[_package(frames[-1]) if frames else "(no Python frame)"] += int(count)
        for frame in {f for f in frames if _package(f) in ("gateway", "services") and not f.endswith(STARTS)}:
            inclusive[frame] += int(count)

    def ranked(counts: Counter[str]) -> list[dict[str, Any]]:
        return [{"frame": frame, "share": round(n / total, 3)} for frame, n in counts.most_common(PROFILE_TOP)]

    return {"self_by_package": ranked(own), "inclusive_project_frames": ranked(inclusive)}


def profile(pid: int, direct: str, through: str, logs: Path) -> dict[str, list[dict[str, Any]]]:
    folded = logs / "profile.folded"
    py_spy = Path(sys.executable).with_name("py-spy")
    command = [str(py_spy), "record", "--pid", str(pid), "--duration", str(PROFILE_S), "--rate", str(PROFILE_RATE_HZ)]
    command += ["--gil", "--format", "raw", "--output", str(folded)]  # the samples that hold the GIL: Python at work
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while spy.poll() is None:
        sequential({"direct": direct, "gateway": through}, 50, stream=False)
    if spy.returncode != 0:
        raise RuntimeError(f"py-spy exited {spy.returncode} (it needs ptrace: root, or kernel.yama.ptrace_scope 0)")
    return summarise(folded)


def measure(requests: int, rounds: int, with_profile: bool) -> dict:
    logs = REPO_ROOT / "logs" / "bench" / "gateway-overhead"
    logs.mkdir(parents=True, exist_ok=True)
    ports = {side: free_port() for side in ("direct", "gateway", TMPFS_SIDE, *FLOORS, WORKER_SIDE)}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items() if name != WORKER_SIDE}
    worker = f"http://127.0.0.1:{ports[WORKER_SIDE]}"
    with tempfile.TemporaryDirectory(dir=TMPFS) as tmpfs:
        processes = start(ports, logs, Path(tmpfs))
        try:
            raw = _phases(urls, processes[1].pid, logs, requests, rounds, with_profile)
            classifier = classifier_sequential(worker, urls["gateway"], requests // 8)
            return raw | {"classifier": classifier, "image_steps": image_steps(requests // 8)}
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=30)


def _phases(urls: dict[str, str], pid: int, logs: Path, requests: int, rounds: int, with_profile: bool) -> dict:
    direct, through = urls["direct"], urls["gateway"]
    pair = {"direct": direct, "gateway": through}
    sequential(urls, 200, stream=False)  # warm-up: connections, caches, the first audit file
    plain = sequential(pair, requests, stream=False)
    streamed = sequential(pair, requests, stream=True)
    # Where the added time goes: every side in turn, plain answers; apart from the targets' pair, since five
    # servers taking turns on one core each find colder caches than two do.
    parts = sequential(urls, requests // 2, stream=False)
    ratios: dict[int, list[float]] = {32: [], 128: []}
    rates: dict[str, list[float]] = {}
    for _ in range(rounds):
        for concurrency in ratios:
            total = concurrency * 20
            direct_rate = asyncio.run(_throughput(direct, concurrency, total))
            gateway_rate = asyncio.run(_throughput(through, concurrency, total))
            rates.setdefault(f"direct_c{concurrency}", []).append(round(direct_rate, 1))
            rates.setdefault(f"gateway_c{concurrency}", []).append(round(gateway_rate, 1))
            ratios[concurrency].append(gateway_rate / direct_rate)
    sampled = profile(pid, direct, through, logs) if with_profile else None
    return {"plain": plain, "streamed": streamed, "parts": parts, "ratios": ratios, "rates": rates, "profile": sampled}


def added(raw: dict) -> dict[str, dict[str, float]]:
    """Added p50 and p99 of each side over direct in the parts phase: the gateway less its tmpfs-audit twin is
    what the audit record's fsync before the last byte costs on this disk; the floors are what FastAPI alone
    and FastAPI with a relay client cost on this core."""
    sides = [side for side in raw["parts"] if side != "direct"]
    return {side: {f"p{round(q * 100)}": round(added_ms(raw["parts"], q, side), 3) for q in (0.5, 0.99)} for side in sides}


def report(raw: dict, requests: int) -> dict:
    targets = [
        target("pass-through: added p50", added_ms(raw["plain"], 0.5), 0.5, "ms", higher_is_better=False),
        target("pass-through: added p99", added_ms(raw["plain"], 0.99), 2.0, "ms", higher_is_better=False),
        target("streamed: added time to first byte p50", added_ms(raw["streamed"], 0.5), 0.5, "ms", higher_is_better=False),
        target("streamed: added time to first byte p99", added_ms(raw["streamed"], 0.99), 2.0, "ms", higher_is_better=False),
        target("pneumonia-classifier: added p50", added_ms(raw["classifier"], 0.5), 0.5, "ms", higher_is_better=False),
        target("pneumonia-classifier: added p99", added_ms(raw["classifier"], 0.99), 2.0, "ms", higher_is_better=False),
    ]
    for concurrency, ratios in raw["ratios"].items():
        entry = target(f"throughput at c={concurrency}, gateway / direct", statistics.median(ratios), 0.9, "x")
        entry["runs"], entry["spread"] = [round(r, 3) for r in ratios], [round(min(ratios), 3), round(max(ratios), 3)]
        targets.append(straddles(entry))
    medians = {
        kind: {side: round(statistics.median(values) * 1000, 3) for side, values in raw[kind].items()}
        for kind in ("plain", "streamed", "parts", "classifier", "image_steps")
    }
    return {
        "what": "the gateway's own cost against a null upstream (scripts/bench_gateway_overhead.py)",
        "machine": machine(),
        "sequential_requests_each_side": requests,
        "median_ms": medians,
        "parts_added_ms": added(raw),
        "rates_per_s": raw["rates"],
        "targets": targets,
        **({"profile": raw["profile"]} if raw["profile"] is not None else {}),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="sequential requests on each side")
    parser.add_argument("--rounds", type=int, default=3, help="alternating throughput rounds")
    parser.add_argument("--profile", action="store_true", help="then sample the gateway with py-spy (a phase of its own)")
    parser.add_argument("--upstream", type=int, metavar="PORT", help=argparse.SUPPRESS)  # the null upstream's process
    parser.add_argument("--floor", choices=sorted(FLOORS.values()), help=argparse.SUPPRESS)  # a floor's process ...
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)  # ... on this port, relaying to --upstream
    args = parser.parse_args(argv)
    if args.floor:
        app = floor_app(args.floor, f"http://127.0.0.1:{args.upstream}")
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_config=None, loop="uvloop", http="httptools")
        return 0
    if args.upstream:
        serve_null_upstream(args.upstream)
        return 0
    result = report(measure(args.requests, args.rounds, args.profile), args.requests)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown_table(result))
    print(f"medians (ms): {result['median_ms']}; rates (/s): {result['rates_per_s']}")
    parts = result["parts_added_ms"].items()
    print("where the added time goes (ms over direct):", "; ".join(f"{side} p50 {a['p50']} p99 {a['p99']}" for side, a in parts))
    for kind, entries in result.get("profile", {}).items():
        print(f"profile, {kind.replace('_', ' ')}:", "; ".join(f"{e['frame']} {e['share']:.1%}" for e in entries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
