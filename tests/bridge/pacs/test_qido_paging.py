"""QIDO against a PACS that caps its answers (Orthanc's LimitFindResults): no study missed without a word."""

from __future__ import annotations

import datetime as dt
import io

from pydicom import dcmread

from services.bridge.pacs.dicomweb import Pacs
from services.bridge.pacs.settings import PacsSettings
from tests.bridge.pacs.helpers import NORMAL
from tests.dicom_files import from_jpeg
from tests.pacs_server import PASSWORD, USER, started

CAP = 3


def _studies_on(pacs, day: dt.date, count: int) -> set[str]:
    datasets = [dcmread(io.BytesIO(from_jpeg(NORMAL, "mono2-8bit"))) for _ in range(count)]
    for dataset in datasets:
        dataset.StudyDate = f"{day:%Y%m%d}"
    pacs.client().store_instances(datasets)
    return {str(ds.StudyInstanceUID) for ds in datasets}


def _watcher(pacs, cap: int) -> Pacs:
    return Pacs(PacsSettings(url=pacs.url, username=USER, password=PASSWORD, modalities=["DX"], qido_cap=cap))


def test_a_capped_pacs_is_asked_over_narrower_date_windows_until_every_study_is_found(tmp_path):
    pacs = started(tmp_path / "pacs", LimitFindResults=CAP)
    try:
        today = dt.date.today()
        uploaded = set().union(
            *(_studies_on(pacs, today - dt.timedelta(days=ago), n) for ago, n in [(0, 2), (1, 2), (2, 2), (4, 1)])
        )
        first = today - dt.timedelta(days=7)

        unaware = _watcher(pacs, cap=0).studies_since(first)  # as the watcher was: the cap drops studies silently
        assert len(unaware.found) < len(uploaded) and unaware.capped_days == []

        aware = _watcher(pacs, cap=CAP).studies_since(first)
        assert set(aware.found) == uploaded and aware.capped_days == []
        assert {aware.found[uid] for uid in uploaded} == {f"{today - dt.timedelta(days=ago):%Y%m%d}" for ago in (0, 1, 2, 4)}

        crowded = today - dt.timedelta(days=6)
        _studies_on(pacs, crowded, CAP)  # a single day with as many studies as the cap: named, not hidden
        again = _watcher(pacs, cap=CAP).studies_since(first)
        assert uploaded <= set(again.found) and again.capped_days == [f"{crowded:%Y%m%d}"]
    finally:
        pacs.stop()
