"""The PACS over DICOMweb (dicomweb-client): the few queries cxr-serve needs, with one error type.

dicomweb-client is synchronous (requests); callers run these methods in a thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests
from dicomweb_client.api import DICOMwebClient
from dicomweb_client.session_utils import create_session_from_user_pass
from pydicom.dataset import Dataset

from services.bridge.pacs.settings import PacsSettings
from services.bridge.pacs.sr import result_series_uid


class PacsUnavailable(Exception):
    """The PACS did not answer, or answered with an error; the message says which call and why."""


@dataclass(frozen=True)
class InstanceRef:
    study: str
    series: str
    sop: str


def _datasets(found: list[dict[str, Any]]) -> list[Dataset]:
    return [Dataset.from_json(item) for item in found]


class Pacs:
    def __init__(self, settings: PacsSettings) -> None:
        session = None
        if settings.username:
            session = create_session_from_user_pass(settings.username, settings.secret() or "")
        session = session or requests.Session()
        session.trust_env = False  # never send a PACS login through a proxy from the environment
        self.client = DICOMwebClient(settings.url, session=session, timeout=60)
        self.modalities = settings.modalities

    def _call(self, what: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except (requests.RequestException, OSError) as error:
            raise PacsUnavailable(f"{what}: {type(error).__name__}: {error}") from None

    def studies_since(self, study_date: str) -> dict[str, str]:
        """Studies with an X-ray of an accepted modality dated `study_date` (YYYYMMDD) or later: UID → date."""
        found: dict[str, str] = {}
        for modality in self.modalities:
            filters = {"ModalitiesInStudy": modality, "StudyDate": f"{study_date}-"}
            # One request, no paging: dicomweb-client's get_remaining pages by offset and never ends against
            # a server that ignores it. The date window keeps the answer small.
            studies = self._call("QIDO studies", self.client.search_for_studies, search_filters=filters)
            found |= {str(ds.StudyInstanceUID): str(ds.get("StudyDate", "")) for ds in _datasets(studies)}
        return found

    def xray_instances(self, study_uid: str) -> list[InstanceRef]:
        refs: list[InstanceRef] = []
        for modality in self.modalities:
            series = self._call("QIDO series", self.client.search_for_series, study_uid, search_filters={"Modality": modality})
            for one in _datasets(series):
                found = self._call("QIDO instances", self.client.search_for_instances, study_uid, str(one.SeriesInstanceUID))
                refs += [InstanceRef(study_uid, str(one.SeriesInstanceUID), str(ds.SOPInstanceUID)) for ds in _datasets(found)]
        return refs

    def has_result(self, ref: InstanceRef) -> bool:
        filters = {"SeriesInstanceUID": result_series_uid(ref.sop)}
        return bool(self._call("QIDO result", self.client.search_for_series, ref.study, search_filters=filters))

    def retrieve(self, ref: InstanceRef) -> Dataset:
        dataset: Dataset = self._call("WADO instance", self.client.retrieve_instance, ref.study, ref.series, ref.sop)
        return dataset

    def store(self, dataset: Dataset) -> None:
        self._call("STOW", self.client.store_instances, datasets=[dataset])
