"""One study: every eligible X-ray analysed through the gateway, its SR stored back. Bounded, idempotent."""

from __future__ import annotations

import asyncio
import io
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
from pydicom.dataset import Dataset

from services.bridge.pacs import sr
from services.bridge.pacs.dicomweb import InstanceRef, Pacs

Status = Literal["stored", "skipped", "refused", "failed"]


@dataclass(frozen=True)
class Outcome:
    ref: InstanceRef
    status: Status  # refused: the gateway will never accept it (4xx); failed: worth another try
    detail: str  # the gateway's reason or the finding; never a patient identifier

    def line(self) -> str:
        return f"{self.status:<8} {self.ref.sop}: {self.detail}"


def _part10(dataset: Dataset) -> bytes:
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()


def reason(response: httpx.Response) -> str:
    """The gateway's own message for a refusal (its OpenAI-shaped error), else the status."""
    try:
        return str(response.json()["error"]["message"])[:300]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"


async def analyze_instance(pacs: Pacs, gateway: httpx.AsyncClient, ref: InstanceRef, language: str) -> Outcome:
    if await asyncio.to_thread(pacs.has_result, ref):
        return Outcome(ref, "skipped", "already analysed (its SR is in the PACS)")
    source = await asyncio.to_thread(pacs.retrieve, ref)
    files = {"file": ("instance.dcm", await asyncio.to_thread(_part10, source), "application/dicom")}
    try:
        response = await gateway.post("/v1/analyze", files=files, data={"language": language})
    except httpx.HTTPError as error:
        return Outcome(ref, "failed", f"gateway unreachable ({type(error).__name__})")
    if 400 <= response.status_code < 500 and response.status_code not in (401, 408, 429):
        return Outcome(ref, "refused", reason(response))
    if response.status_code != 200:
        return Outcome(ref, "failed", f"{response.status_code}: {reason(response)}")
    answer = response.json()
    cxr = answer["cxr"]
    if cxr["status"] != "complete":  # a partial result is not written back: the next run tries again
        return Outcome(ref, "failed", "partial: " + "; ".join(w["message"] for w in cxr["warnings"]))
    try:
        result = sr.build(source, sr.Analysis(cxr=cxr, report=answer["report"]))
    except sr.SourceIncomplete as error:  # a Type 1 attribute missing: named, never a traceback
        return Outcome(ref, "refused", str(error))
    await asyncio.to_thread(pacs.store, result)
    return Outcome(ref, "stored", f"{cxr['classification']['predicted_class']}, risk {cxr['risk_level']['code']}")


async def analyze_study(
    pacs: Pacs, gateway: httpx.AsyncClient, study_uid: str, language: str, slots: asyncio.Semaphore
) -> list[Outcome]:
    refs = await asyncio.to_thread(pacs.xray_instances, study_uid)

    async def bounded(ref: InstanceRef) -> Outcome:
        async with slots:
            return await analyze_instance(pacs, gateway, ref, language)

    return list(await asyncio.gather(*(bounded(ref) for ref in refs)))


def gateway_client(url: str, api_key: str | None, timeout_s: float, ca_file: Path | None = None) -> httpx.AsyncClient:
    """The gateway, as any HIS calls it; over HTTPS, its certificate checked against the system's CAs, or only
    against `ca_file` (the hospital's CA) when one is given."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    verify = ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
    timeout = httpx.Timeout(timeout_s, connect=10.0)
    return httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout, trust_env=False, verify=verify)
