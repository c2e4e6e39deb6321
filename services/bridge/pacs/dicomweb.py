"""The PACS over DICOMweb (dicomweb-client): the few queries cxr-serve needs, with one error type.

dicomweb-client is synchronous (requests); callers run these methods in a thread.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import requests
from dicomweb_client.api import DICOMwebClient
from dicomweb_client.session_utils import create_session_from_user_pass
from pydicom.dataset import Dataset

from services.bridge.pacs.settings import PacsSettings
from services.bridge.pacs.sr import result_series_uid


class PacsUnavailable(Exception):
    """The PACS did not answer, or answered with an error; the message says which call and why."""


_PAGE = 100  # the page size against a PACS without a cap


@dataclass
class Studies:
    found: dict[str, str] = field(default_factory=dict)  # Study Instance UID → study date
    capped_days: list[str] = field(default_factory=list)  # days on which the PACS's cap hid studies


@dataclass(frozen=True)
class InstanceRef:
    study: str
    series: str
    sop: str


def _datasets(found: list[dict[str, Any]]) -> list[Dataset]:
    return [Dataset.from_json(item) for item in found]


def dicomweb_client(url: str, username: str | None, password: str | None, timeout_s: float = 60) -> DICOMwebClient:
    session = create_session_from_user_pass(username, password or "") if username else requests.Session()
    session.trust_env = False  # never send a PACS login through a proxy from the environment
    return DICOMwebClient(url, session=session, timeout=timeout_s)


def call(what: str, method: Any, *args: Any, **kwargs: Any) -> Any:
    """One DICOMweb call; whatever fails is PacsUnavailable naming the call."""
    try:
        return method(*args, **kwargs)
    except (requests.RequestException, OSError) as error:
        raise PacsUnavailable(f"{what}: {type(error).__name__}: {error}") from None


class Pacs:
    def __init__(self, settings: PacsSettings) -> None:
        self.client = dicomweb_client(settings.url, settings.username, settings.secret())
        self.modalities = settings.modalities
        self.cap = settings.qido_cap

    def studies_since(self, first: dt.date) -> Studies:
        """Studies with an X-ray of an accepted modality dated `first` or later: UID → date, every one of them.

        Each query is paged (`limit`/`offset`, pages of `qido_cap`, or 100 where the PACS has no cap). A
        PACS that caps its answers (Orthanc's LimitFindResults, dcm4chee's) drops what is over the cap
        without a word, offset or not: a listing that reaches the cap is taken as capped, and its date
        window is halved until each part stays under it. A single day that still reaches it is named in
        `capped_days`, for the operator: the cap must be raised (docs/integrators.md, "PACS integration")."""
        studies = Studies()
        for modality in self.modalities:
            self._window(modality, first, None, studies)
        return studies

    def _window(self, modality: str, first: dt.date, last: dt.date | None, studies: Studies) -> None:
        upper = "" if last is None else f"{last:%Y%m%d}"  # the newest window is open: a study dated ahead counts
        found = self._listing({"ModalitiesInStudy": modality, "StudyDate": f"{first:%Y%m%d}-{upper}"})
        if not self.cap or len(found) < self.cap:
            studies.found |= found
            return
        end = last or dt.date.today()
        if end <= first:  # one day (or a future-dated remainder): nothing narrower to ask by date
            studies.found |= found
            studies.capped_days.append(f"{first:%Y%m%d}")
            return
        middle = first + (end - first) // 2
        self._window(modality, first, middle, studies)
        self._window(modality, middle + dt.timedelta(days=1), last, studies)

    def _listing(self, filters: dict[str, str]) -> dict[str, str]:
        """One query, page by page until a page is short or brings nothing new (a PACS that ignores offset)."""
        page_size = self.cap or _PAGE
        found: dict[str, str] = {}
        while True:
            page = call(
                "QIDO studies", self.client.search_for_studies, search_filters=filters, limit=page_size, offset=len(found)
            )
            new = {str(ds.StudyInstanceUID): str(ds.get("StudyDate", "")) for ds in _datasets(page)}
            new = {uid: date for uid, date in new.items() if uid not in found}
            found |= new
            if len(page) < page_size or not new:
                return found

    def xray_instances(self, study_uid: str) -> list[InstanceRef]:
        refs: list[InstanceRef] = []
        for modality in self.modalities:
            series = call("QIDO series", self.client.search_for_series, study_uid, search_filters={"Modality": modality})
            for one in _datasets(series):
                found = call("QIDO instances", self.client.search_for_instances, study_uid, str(one.SeriesInstanceUID))
                refs += [InstanceRef(study_uid, str(one.SeriesInstanceUID), str(ds.SOPInstanceUID)) for ds in _datasets(found)]
        return refs

    def has_result(self, ref: InstanceRef) -> bool:
        filters = {"SeriesInstanceUID": result_series_uid(ref.sop)}
        return bool(call("QIDO result", self.client.search_for_series, ref.study, search_filters=filters))

    def series(self, modality: str, description: str, study_uid: str | None = None) -> list[Dataset]:
        """Series of a modality with this exact description, in one study or across the PACS, page by page.

        The description is matched here: Orthanc's QIDO matches no SeriesDescription filter, not even `*`
        (tests/bridge/pacs/test_review.py stores and finds the SRs)."""
        page_size, found, offset = self.cap or _PAGE, [], 0
        fields = ["SeriesDescription", "SeriesDate", "SeriesTime"]
        while True:
            page = call(
                "QIDO series",
                self.client.search_for_series,
                study_uid,
                search_filters={"Modality": modality},
                fields=fields,
                limit=page_size,
                offset=offset,
            )
            offset += len(page)
            found += [ds for ds in _datasets(page) if ds.get("SeriesDescription") == description]
            if len(page) < page_size:
                return found

    def institution(self, study_uid: str) -> str:
        """The study's site, the InstitutionName of its images' series ("" when none has one). Asked at series
        level: InstitutionName belongs to the equipment (a series) and Orthanc's study-level QIDO leaves it out."""
        found = call("QIDO series", self.client.search_for_series, study_uid, fields=["InstitutionName"])
        names = (str(ds.get("InstitutionName", "")) for ds in _datasets(found))
        return next((name for name in names if name), "")

    def instances(self, study_uid: str, series_uid: str) -> list[InstanceRef]:
        found = call("QIDO instances", self.client.search_for_instances, study_uid, series_uid)
        return [InstanceRef(study_uid, series_uid, str(ds.SOPInstanceUID)) for ds in _datasets(found)]

    def retrieve(self, ref: InstanceRef) -> Dataset:
        dataset: Dataset = call("WADO instance", self.client.retrieve_instance, ref.study, ref.series, ref.sop)
        return dataset

    def store(self, dataset: Dataset) -> None:
        call("STOW", self.client.store_instances, datasets=[dataset])
