"""The requests a benchmark sends: to the gateway, and to each backend directly with the pipeline's own bodies."""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import httpx
from PIL import Image

from gateway.backends.calls import Sampling
from gateway.clinical.abstention import FindingAssessment
from gateway.clinical.content import load as load_clinical
from gateway.pipeline.requests import ReportFacts, fracture_call, report_call
from scripts.launcher import config
from scripts.loadtest import percentiles
from services.contract.classification import Classification
from services.contract.paths import REPO_ROOT
from services.contract.priority import Priority
from services.contract.roles import Role

Call = Callable[[], Awaitable[object]]


class Refused(RuntimeError):
    """A 429: admission turned the request away."""


def images() -> list[bytes]:
    return [p.read_bytes() for p in sorted((REPO_ROOT / "models" / "samples").glob("*.jpeg"))]


def uri(image: bytes, mime: str = "image/jpeg") -> str:
    return f"data:{mime};base64,{base64.b64encode(image).decode()}"


def resized_png(image: bytes, side: int) -> bytes:
    """The X-ray at the VLM processor's input size (bicubic, as its processor resizes), losslessly encoded."""
    picture = Image.open(io.BytesIO(image)).convert("RGB").resize((side, side), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


async def timed_batch(calls: list[Call], concurrency: int) -> dict:
    """Run the calls with at most `concurrency` in flight: throughput, latencies, errors, and the
    `status` of the answers that carry one (a cxr-report result: complete or partial)."""
    semaphore = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    errors = 0

    async def one(call: Call) -> None:
        nonlocal errors
        async with semaphore:
            started = time.perf_counter()
            try:
                answer = await call()
                latencies.append(time.perf_counter() - started)
            except (httpx.HTTPError, RuntimeError):
                errors += 1
                return
        if isinstance(answer, dict) and "status" in answer:
            statuses[answer["status"]] += 1

    started = time.perf_counter()
    await asyncio.gather(*(one(call) for call in calls))
    elapsed = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "requests": len(calls),
        "errors": errors,
        "elapsed_s": elapsed,
        "throughput_rps": len(latencies) / elapsed,
        "latency_ms": percentiles(latencies),
        "statuses": dict(statuses),
    }


class Backends:
    """Direct calls to each backend and to the gateway, with the requests the pipeline itself makes."""

    def __init__(self, stack: config.StackConfig, client: httpx.AsyncClient, tokens: dict[str, int]) -> None:
        self.stack = stack
        self.client = client
        self.tokens = tokens
        self.gateway = f"http://127.0.0.1:{stack.gateway.port}"
        self.clinical = load_clinical()
        self._numbers = itertools.count()

    async def post(self, url: str, **kwargs) -> dict:
        response = await self.client.post(url, **kwargs)
        if response.status_code == 429:
            raise Refused(url)
        if response.status_code != 200:
            raise RuntimeError(f"{url}: {response.status_code}")
        return response.json()

    async def classify(self, image: bytes) -> dict:
        return await self.post(f"{self.stack.url('classifier')}/classify", content=image)

    def sampling(self, role: Role) -> Sampling:
        """What the gateway sends this role (models.yaml's defaults), at the benchmark's length."""
        defaults = self.stack.sampling[role]
        return Sampling(max_tokens=self.tokens[role.value], temperature=defaults.temperature, top_p=defaults.top_p)

    async def fracture(self, image: bytes, mime: str = "image/jpeg") -> str:
        call = fracture_call("chexfract", self.clinical.fracture_prompt, uri(image, mime), self.sampling(Role.FRACTURE))
        answer = await self.post(f"{self.stack.url('fracture')}/v1/chat/completions", json=call.body())
        return answer["choices"][0]["message"]["content"]

    async def report(self, cxr: dict) -> str:
        """The report request the pipeline makes for a result `cxr` (same prompt, same length), with an
        indication of its own, as every pipeline request of the bench has (see `pipeline`)."""
        facts = ReportFacts(
            language=cxr["language"],
            classification=Classification(**cxr["classification"]),
            fracture_text=cxr["fracture"]["text"] if cxr["fracture"] else None,
            risk_text=cxr["risk_level"]["text"],
            indication=self.indication(),
            assessed=[FindingAssessment(**assessment) for assessment in cxr["assessments"]],
        )
        call = report_call("report-llm", self.clinical, facts, self.sampling(Role.REPORT))
        answer = await self.post(f"{self.stack.url('report')}/v1/chat/completions", json=call.body())
        return answer["choices"][0]["message"]["content"]

    def indication(self) -> str:
        """A clinical indication never sent before. The bench has 16 X-rays; without it a report prompt seen
        before would be read from vLLM's prefix cache, which real traffic (a new patient each time) never is."""
        return f"Benchmark request {next(self._numbers)}."

    async def pipeline(self, image: bytes, priority: Priority = Priority.ROUTINE) -> dict:
        content = [{"type": "image_url", "image_url": {"url": uri(image)}}, {"type": "text", "text": self.indication()}]
        body = {"model": "cxr-report", "messages": [{"role": "user", "content": content}], "metadata": {"priority": priority}}
        return (await self.post(f"{self.gateway}/v1/chat/completions", json=body))["cxr"]

    async def chat(self, base: str, index: int, max_tokens: int) -> dict:
        payload = {
            "model": "report-llm",
            "max_tokens": max_tokens,
            "temperature": 0,
            "messages": [{"role": "user", "content": f"Describe chest X-ray finding number {index}."}],
        }
        return await self.post(f"{base}/v1/chat/completions", json=payload)

    async def naive(self, image: bytes, cxr: dict) -> dict[str, float]:
        """The seeds' design, extended with ChexFract: every stage in turn, nothing in parallel; seconds per stage."""
        seconds = {}
        for stage, call in (
            ("classifier", lambda: self.classify(image)),
            ("fracture", lambda: self.fracture(image)),
            ("report", lambda: self.report(cxr)),
        ):
            started = time.perf_counter()
            await call()
            seconds[stage] = time.perf_counter() - started
        return seconds
