"""The Storage SCP: C-STORE in, checked against the DICOM policy, spooled durably (with its priority), then answered.

Refusals are DIMSE statuses (PS3.4 B.2.3, PS3.7 C.4), never a silent drop, each with an Error Comment that
names why: a calling AE title not on the allow-list is rejected at association; a dataset over the size
limit, or a spool that cannot be written, is 0xA700 (out of resources); one the policy does not analyse (a
CT, a colour secondary capture, another body part, a truncated file) is 0xC000 (cannot understand).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from prometheus_client import Counter
from pydicom.dataset import Dataset
from pynetdicom import AE, StoragePresentationContexts, VerificationPresentationContexts, evt
from pynetdicom.events import Event, EventHandlerType

from services.bridge.settings import BridgeSettings
from services.bridge.spool import Spool
from services.contract import dicom
from services.contract.priority import Priority

log = logging.getLogger("bridge")

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000
_COMMENT_MAX = 64  # Error Comment is an LO: 64 characters
HIGH_PRIORITY = 0x0001  # LOW is 0x0002, MEDIUM 0x0000


def _status(code: int, why: str) -> Dataset:
    status = Dataset()
    status.Status = code
    status.ErrorComment = why[:_COMMENT_MAX]
    return status


def application_entity(settings: BridgeSettings) -> AE:
    ae = AE(ae_title=settings.ae_title)
    ae.supported_contexts = [*StoragePresentationContexts, *VerificationPresentationContexts]
    ae.require_calling_aet = list(settings.allowed_callers)  # empty: any caller
    ae.network_timeout = settings.network_timeout_s
    return ae


class StoreHandler:
    """EVT_C_STORE: runs in the association's thread; `wake` tells the analyser there is work."""

    def __init__(self, spool: Spool, settings: BridgeSettings, wake: Callable[[], None], counted: Counter) -> None:
        self._spool = spool
        self._counted = counted
        self._policy = settings.dicom_policy()
        self._max_bytes = settings.max_dataset_bytes
        self._wake = wake

    def __call__(self, event: Event) -> Dataset | int:
        started = time.perf_counter()
        outcome, answer = self._store(event)
        sop = str(getattr(event.request, "AffectedSOPInstanceUID", "") or "")  # a UID names the image, nothing else
        fields = {"sop_instance_uid": sop, "outcome": outcome, "ms": round((time.perf_counter() - started) * 1000, 1)}
        log.info("c-store", extra={"fields": fields})
        self._counted.labels(outcome).inc()
        return answer

    def _store(self, event: Event) -> tuple[str, Dataset | int]:
        try:
            data = event.encoded_dataset()
        except Exception as error:  # noqa: BLE001 - whatever pynetdicom could not assemble, the peer is told
            return "unreadable", _status(CANNOT_UNDERSTAND, f"dataset could not be read ({type(error).__name__})")
        if len(data) > self._max_bytes:
            return "too large", _status(OUT_OF_RESOURCES, f"dataset over {self._max_bytes} bytes")
        try:
            references = dicom.check(data, self._policy)
        except dicom.DicomRejected as refused:
            return "refused", _status(CANNOT_UNDERSTAND, str(refused))
        try:
            new = self._spool.accept(data, references, dimse_priority(event.request), time.time())
        except OSError as error:
            log.error("spool write failed", extra={"fields": {"error": type(error).__name__}})
            return "spool failed", _status(OUT_OF_RESOURCES, "the bridge cannot store it now")
        if new:
            self._wake()
        return ("spooled" if new else "duplicate"), SUCCESS


def dimse_priority(request: object) -> Priority:
    """The C-STORE's Priority (PS3.7 9.1.1.1): HIGH is a STAT read; MEDIUM (the default) and LOW are routine."""
    return Priority.STAT if getattr(request, "Priority", None) == HIGH_PRIORITY else Priority.ROUTINE


def on_echo(_event: Event) -> int:
    return SUCCESS


def on_connection(event: Event) -> None:
    """Every read of an accepted connection gets the AE's network timeout. pynetdicom sets it on the listening
    socket only, and an accepted socket does not inherit it: a peer that claims a 2 GB PDU and goes silent
    would hold its thread for ever. With it, the read fails, the association ends, its buffer goes."""
    connection = event.assoc.dul.socket
    if connection is not None and connection.socket is not None:
        connection.socket.settimeout(event.assoc.ae.network_timeout)


def handlers(store: StoreHandler) -> list[EventHandlerType]:
    return [(evt.EVT_C_STORE, store), (evt.EVT_C_ECHO, on_echo), (evt.EVT_CONN_OPEN, on_connection)]
