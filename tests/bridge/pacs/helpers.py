"""Uploading studies to the test PACS, running the pacs command, and reading our SRs back."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time

import highdicom as hd
from dicomweb_client.api import DICOMwebClient
from pydicom import Dataset, dcmread

from services.contract.paths import REPO_ROOT
from tests.conftest import SAMPLES
from tests.dicom_files import from_jpeg

PNEUMONIA = (SAMPLES / "person1946_bacteria_4874.jpeg").read_bytes()
NORMAL = (SAMPLES / "NORMAL2-IM-1427-0001.jpeg").read_bytes()


def upload(client: DICOMwebClient, *dicoms: bytes) -> list[Dataset]:
    datasets = [dcmread(io.BytesIO(d)) for d in dicoms]
    client.store_instances(datasets)
    return datasets


def new_study(client: DICOMwebClient, jpeg: bytes = NORMAL, variant: str = "mono2-8bit") -> Dataset:
    return upload(client, from_jpeg(jpeg, variant))[0]


def our_srs(client: DICOMwebClient, study_uid: str) -> list[Dataset]:
    """Every SR instance in the study (ours are the only ones)."""
    srs = []
    for series in client.search_for_series(study_uid, search_filters={"Modality": "SR"}):
        series_uid = Dataset.from_json(series).SeriesInstanceUID
        for instance in client.search_for_instances(study_uid, series_uid):
            srs.append(client.retrieve_instance(study_uid, series_uid, Dataset.from_json(instance).SOPInstanceUID))
    return srs


def wait_for_srs(client: DICOMwebClient, study_uid: str, count: int, timeout_s: float = 300) -> list[Dataset]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = our_srs(client, study_uid)
        if len(found) >= count:
            return found
        time.sleep(1)
    raise TimeoutError(f"no SR appeared in study {study_uid} within {timeout_s} s")


def pacs_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "services.bridge", "pacs", *args]


def run_pacs(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        pacs_command(*args), env={**os.environ, **env}, capture_output=True, text=True, timeout=900, cwd=REPO_ROOT
    )


def measurement_groups(sr: Dataset) -> dict[str, object]:
    report = hd.sr.MeasurementReport.from_sequence([sr])
    return {group.tracking_identifier: group for group in report.get_image_measurement_groups()}


def texts_of(item: Dataset) -> dict[str, str]:
    """The TEXT children of a content item, by concept name."""
    return {c.ConceptNameCodeSequence[0].CodeMeaning: c.TextValue for c in item.ContentSequence if c.ValueType == "TEXT"}
