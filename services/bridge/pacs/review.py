"""The radiologist's review against the PACS: the worklist of unverified results, and the signature.

The PACS is the record: the worklist is a query (QIDO) for cxr-serve's preliminary SR series that no
verified SR supersedes yet, newest first, and a result is read from the PACS when opened; cxr-serve keeps
no second copy of patient data. Signing builds the verified SR (pacs/verified.py) and stores it (STOW).

One result, one signature. The verified SR's UIDs derive from the preliminary's, so a second sign-off is
the same instance: it is refused before anything is stored, naming who signed and when; and two sign-offs
racing past that check store the same instance, of which the PACS keeps one, so what is stored is read
back and the signer whose review it is not gets the same refusal.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

from pydicom import Dataset

from services.bridge.pacs import sr, verified
from services.bridge.pacs.dicomweb import InstanceRef, Pacs, PacsUnavailable
from services.bridge.pacs.verified import Review, Signed


class AlreadySigned(Exception):
    """The result has a verified SR: its reviewer and time are in the message and in `signed`."""

    def __init__(self, signed: Signed) -> None:
        at = signed.signed_at.isoformat(timespec="seconds")
        super().__init__(f"this result was signed by {signed.reviewer} ({signed.login}) at {at}")
        self.signed = signed


@dataclass(frozen=True)
class Pending:
    """A preliminary result waiting for review: where its SR is, and when it was made."""

    sr: InstanceRef
    made: str  # SeriesDate and SeriesTime of the preliminary series, as the PACS has them ("" when absent)


def _when(series: object) -> str:
    return f"{getattr(series, 'SeriesDate', '')}{getattr(series, 'SeriesTime', '')}"


class Reviews:
    def __init__(self, pacs: Pacs) -> None:
        self.pacs = pacs

    def worklist(self, study_uid: str | None = None, sites: frozenset[str] | None = None) -> list[Pending]:
        """The unverified results, newest first (in one study, or across the PACS); with `sites`, only those of
        studies from one of them (their InstitutionName: one QIDO per study, asked once)."""
        preliminary = self.pacs.series("SR", sr.SERIES_DESCRIPTION, study_uid)
        done = {str(s.SeriesInstanceUID) for s in self.pacs.series("SR", verified.SERIES_DESCRIPTION, study_uid)}
        pending = []
        site = functools.cache(self.pacs.institution)
        for series in sorted(preliminary, key=_when, reverse=True):
            if sites is not None and site(str(series.StudyInstanceUID)) not in sites:
                continue
            for ref in self.pacs.instances(str(series.StudyInstanceUID), str(series.SeriesInstanceUID)):
                if verified.verified_series_uid(ref.sop) not in done:
                    pending.append(Pending(sr=ref, made=_when(series)))
        return pending

    def signed(self, preliminary: InstanceRef) -> Signed | None:
        """The signature on a result, read from its verified SR; None while it is unsigned."""
        stored = self.verified_sr(preliminary)
        return None if stored is None else verified.read_verified(stored)

    def verified_sr(self, preliminary: InstanceRef) -> Dataset | None:
        """A result's verified SR as the PACS holds it; None while it is unsigned."""
        series = verified.verified_series_uid(preliminary.sop)
        sop = verified.verified_instance_uid(preliminary.sop)
        if not any(ref.sop == sop for ref in self.pacs.instances(preliminary.study, series)):
            return None
        return self.pacs.retrieve(InstanceRef(preliminary.study, series, sop))

    def sign(self, preliminary: InstanceRef, review: Review) -> tuple[Signed, Dataset]:
        """Store the verified SR for a result: the signature and the SR as the PACS then holds it (the ORU's
        source); AlreadySigned when it has one, whoever's it is."""
        existing = self.signed(preliminary)
        if existing is not None:
            raise AlreadySigned(existing)
        self.pacs.store(verified.build(self.pacs.retrieve(preliminary), review))
        kept = self.verified_sr(preliminary)
        if kept is None:
            raise PacsUnavailable("STOW: the PACS took the verified SR but does not return it")
        stored = verified.read_verified(kept)
        ours = (review.reviewer.login, review.signed_at.astimezone(dt.UTC).replace(microsecond=0))
        if (stored.login, stored.signed_at) != ours:  # another sign-off raced this one, and its SR is the one kept
            raise AlreadySigned(stored)
        return stored, kept


def signed_between(pacs: Pacs, since: dt.datetime, until: dt.datetime) -> list[Signed]:
    """Every verified SR of ours signed in [since, until), read from the PACS (pacs/agreement.py's input)."""
    found = []
    for series in pacs.series("SR", verified.SERIES_DESCRIPTION):
        for ref in pacs.instances(str(series.StudyInstanceUID), str(series.SeriesInstanceUID)):
            signed = verified.read_verified(pacs.retrieve(ref))
            if since <= signed.signed_at < until:
                found.append(signed)
    return found
