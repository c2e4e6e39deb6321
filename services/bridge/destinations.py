"""Where results go: the SR to the PACS (C-STORE or STOW-RS) and the ORU^R01 to the RIS (MLLP); a radiologist's
signed result to the RIS as its final (or corrected) ORU^R01, and to the FHIR server as a final (or corrected)
DiagnosticReport.

A destination is one method: deliver a parcel, return the receiver's acknowledgement for the record, or
raise `Undelivered` naming why (the outbox retries it, then dead-letters it with that reason). Each is
configured on its own by CXR_BRIDGE_* settings and off until its address is set (services/bridge/settings.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

import hl7
import httpx
from hl7.mllp import open_hl7_connection
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import ComprehensiveSRStorage  # type: ignore[attr-defined]

from services.bridge import fhir, oru
from services.bridge.pacs import dicomweb, sr, verified
from services.bridge.settings import BridgeSettings
from services.contract.review import SignedOut

_REASON_MAX = 300


class Undelivered(Exception):
    """The destination did not take the result; the message is the receiver's reason or the fault."""


@dataclass(frozen=True)
class Parcel:
    """What is delivered: an analysed image and the gateway's answer, or a verified SR and its signature."""

    source: Dataset  # the image as received, or the verified SR (their Patient and Study modules go into the SR, ORU)
    result: dict[str, Any]  # the gateway's answer, or a SignedOut (services/contract/review.py)

    @property
    def signed(self) -> SignedOut | None:
        return SignedOut.model_validate(self.result) if "verified_sop" in self.result else None

    @property
    def analysis(self) -> sr.Analysis:
        return sr.Analysis(cxr=self.result["cxr"], report=self.result["report"])


Kind = Literal["preliminary", "signed"]  # an analysis's result, or a radiologist's signed result


class Destination(Protocol):
    name: str
    takes: frozenset[Kind]  # what it is sent

    async def deliver(self, parcel: Parcel) -> str: ...


BOTH: frozenset[Kind] = frozenset({"preliminary", "signed"})


class DicomStore:
    """The SR by C-STORE to the PACS's AE (CXR_BRIDGE_SR_HOST / _PORT / _AE_TITLE)."""

    name = "pacs-dimse"
    takes: frozenset[Kind] = frozenset({"preliminary"})  # a signed result's SR is stored by the review itself

    def __init__(self, settings: BridgeSettings, host: str) -> None:
        self._address = (host, settings.sr_port)
        self._called = settings.sr_ae_title
        self._ae = AE(ae_title=settings.ae_title)
        self._ae.add_requested_context(ComprehensiveSRStorage, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        self._ae.acse_timeout = self._ae.dimse_timeout = self._ae.network_timeout = settings.send_timeout_s

    async def deliver(self, parcel: Parcel) -> str:
        return await asyncio.to_thread(self._store, sr.build(parcel.source, parcel.analysis))

    def _store(self, dataset: Dataset) -> str:
        host, port = self._address
        association = self._ae.associate(host, port, ae_title=self._called)
        if not association.is_established:
            refused = "rejected" if association.is_rejected else "not established"
            raise Undelivered(f"association with {self._called} at {host}:{port} {refused}")
        try:
            status = association.send_c_store(dataset)
        finally:
            association.release()
        if "Status" not in status:
            raise Undelivered("no C-STORE response (timed out or aborted)")
        code = int(status.Status)
        if code == 0 or 0xB000 <= code <= 0xBFFF:  # Success, or a warning: stored (PS3.4 B.2.3)
            return f"C-STORE 0x{code:04X}"
        raise Undelivered(f"C-STORE 0x{code:04X} {status.get('ErrorComment', '')}".strip())


class Stow:
    """The SR by STOW-RS to the PACS's DICOMweb root (CXR_BRIDGE_STOW_URL)."""

    name = "pacs-stow"
    takes: frozenset[Kind] = frozenset({"preliminary"})

    def __init__(self, settings: BridgeSettings, url: str) -> None:
        password = settings.stow_password.get_secret_value() if settings.stow_password else None
        self._client = dicomweb.dicomweb_client(url, settings.stow_username, password, settings.send_timeout_s)

    async def deliver(self, parcel: Parcel) -> str:
        dataset = sr.build(parcel.source, parcel.analysis)
        try:
            await asyncio.to_thread(dicomweb.call, "STOW", self._client.store_instances, datasets=[dataset])
        except dicomweb.PacsUnavailable as error:
            raise Undelivered(str(error)[:_REASON_MAX]) from None
        return "STOW stored"


class Ris:
    """The ORU^R01 over MLLP to the RIS (CXR_BRIDGE_RIS_HOST / _PORT); delivered on AA, else retried."""

    name = "ris"
    takes = BOTH

    def __init__(self, settings: BridgeSettings, host: str) -> None:
        self._address = (host, settings.ris_port)
        self._sender = (settings.ae_title.strip(), settings.facility)
        self._receiver = (settings.ris_application, settings.ris_facility)
        self._timeout_s = settings.send_timeout_s

    async def deliver(self, parcel: Parcel) -> str:
        now = datetime.now().astimezone()
        signed = parcel.signed
        if signed is None:
            kind, message = "preliminary", oru.build(parcel.source, parcel.analysis, self._sender, self._receiver, now)
        else:
            report = verified.signed_report(parcel.source)
            kind, message = "signed", oru.build_signed(parcel.source, signed, report, self._sender, self._receiver, now)
        ack = await self._exchange(message)
        try:
            msa = ack.segment("MSA")
        except KeyError:
            raise Undelivered("the RIS answered without an MSA segment") from None
        code, acked = _field(msa, 1), _field(msa, 2)
        if acked != oru.control_id(str(parcel.source.SOPInstanceUID), kind):
            raise Undelivered(f"the RIS acknowledged another message ({acked!r})")
        if code not in ("AA", "CA"):
            raise Undelivered(f"the RIS answered {code}: {_ack_reason(ack)}"[:_REASON_MAX])
        return f"ACK {code}"

    async def _exchange(self, message: str) -> hl7.Message:
        host, port = self._address
        try:
            reader, writer = await asyncio.wait_for(open_hl7_connection(host, port, encoding="utf-8"), self._timeout_s)
        except (OSError, TimeoutError) as error:
            raise Undelivered(f"the RIS at {host}:{port} is unreachable ({type(error).__name__})") from None
        try:
            writer.writeblock(message.encode("utf-8"))
            await writer.drain()
            return await asyncio.wait_for(reader.readmessage(), self._timeout_s)
        except TimeoutError:
            raise Undelivered(f"no ACK from the RIS within {self._timeout_s:g} s") from None
        except (OSError, EOFError, ValueError, hl7.ParseException) as error:
            raise Undelivered(f"the RIS closed the connection without an ACK ({type(error).__name__})") from None
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class FhirServer:
    """A signed result's DiagnosticReport (services/bridge/fhir.py) to the FHIR server (CXR_BRIDGE_FHIR_URL), by a
    conditional update on its identifier: a retry after a lost answer updates the same resource. Delivered on a
    2xx; an OperationOutcome's diagnostics name why not."""

    name = "fhir"
    takes: frozenset[Kind] = frozenset({"signed"})

    def __init__(self, settings: BridgeSettings, url: str) -> None:
        self._url = url.rstrip("/") + "/DiagnosticReport"
        token = settings.fhir_token.get_secret_value() if settings.fhir_token else None
        self._headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._verify = ssl.create_default_context(cafile=settings.fhir_ca_file) if settings.fhir_ca_file else True
        self._timeout_s = settings.send_timeout_s

    async def deliver(self, parcel: Parcel) -> str:
        signed = parcel.signed
        if signed is None:
            raise Undelivered("the FHIR destination takes signed results only")
        report = fhir.diagnostic_report(parcel.source, signed, verified.signed_report(parcel.source))
        key = fhir.identifier(signed)
        params = {"identifier": f"{key['system']}|{key['value']}"}
        try:
            async with httpx.AsyncClient(timeout=self._timeout_s, verify=self._verify, trust_env=False) as client:
                answer = await client.put(self._url, params=params, json=report, headers=self._headers)
        except httpx.HTTPError as error:
            raise Undelivered(f"the FHIR server is unreachable ({type(error).__name__})") from None
        if not answer.is_success:
            raise Undelivered(f"the FHIR server answered {answer.status_code}: {_outcome(answer)}"[:_REASON_MAX])
        return f"FHIR {answer.status_code}"


def _outcome(answer: httpx.Response) -> str:
    """An OperationOutcome's first diagnostics (or details), else nothing said."""
    with contextlib.suppress(ValueError, KeyError, IndexError, TypeError, AttributeError):
        issue = answer.json()["issue"][0]
        return str(issue.get("diagnostics") or issue["details"]["text"])
    return "no OperationOutcome"


def _field(segment: hl7.Segment, index: int) -> str:
    return str(segment[index]) if len(segment) > index else ""  # segment[0] is the segment's name


def _ack_reason(ack: hl7.Message) -> str:
    """MSA-3 (the text message), else the ERR segment's user message or error code, else nothing said."""
    text = _field(ack.segment("MSA"), 3)
    if not text:
        with contextlib.suppress(KeyError):
            err = ack.segment("ERR")
            text = _field(err, 8) or _field(err, 3)
    return str(ack.unescape(text)) if text else "no reason given"


def configured(settings: BridgeSettings) -> dict[str, Destination]:
    """The destinations whose address is set, by name (the outbox's `destination` column)."""
    found: list[Destination] = []
    if settings.sr_host:
        found.append(DicomStore(settings, settings.sr_host))
    if settings.stow_url:
        found.append(Stow(settings, settings.stow_url))
    if settings.ris_host:
        found.append(Ris(settings, settings.ris_host))
    if settings.fhir_url:
        found.append(FhirServer(settings, settings.fhir_url))
    return {destination.name: destination for destination in found}
