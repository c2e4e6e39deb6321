"""One analysed X-ray → a DICOM Comprehensive SR following TID 1500 (Measurement Report), with highdicom.

What the SR says, so a viewer (OHIF reads TID 1500) and the PACS can use it:
- one measurement group (TID 1501) per model that ran, each naming its algorithm (name, version = the
  first 16 hex digits of the weights' sha256, the whole sha256 as a parameter) and the source image;
- the classifier's finding as a coded qualitative evaluation (SNOMED CT Pneumonia / Normal) with its
  probability as a measurement;
- the fracture model's finding (Fracture: described / not detected) and its text, verbatim;
- the report text, the disclaimer and a stand-in notice in a "Qualitative Evaluations" container;
- preliminary AI output: CompletionFlag PARTIAL, VerificationFlag UNVERIFIED, and a series description
  saying so. A radiologist verifies; cxr-serve never marks its own output final.

Codes: services/bridge/codes.py (the ORU's too). Every UID of an SR is derived from its source image's SOP
Instance UID: the SR made for an image is the same instance however often it is built and sent, so a
PACS keeps one, and a resend after a crash is recognised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import UID, generate_uid

from services.bridge.codes import (
    CHEST_XRAY,
    CLASS_CODES,
    DESCRIBED,
    DISCLAIMER,
    FRACTURE,
    FRACTURE_TEXT,
    NO_UNITS,
    NOT_DETECTED,
    PNEUMONIA,
    PREDICTED_CLASS,
    PROBABILITY,
    QUALITATIVE_EVALUATIONS,
    REPORT,
    SCHEME,
)

SERIES_DESCRIPTION = "cxr-serve AI result - PRELIMINARY, unverified"
# A fixed device UID for cxr-serve as observer, so every SR names the same device.
DEVICE_UID = generate_uid(entropy_srcs=["cxr-serve observer device"])


def result_series_uid(source_sop_uid: str) -> str:
    """The SR series for one source image: the same UID every time, so a second analysis is visible before it runs."""
    return str(generate_uid(entropy_srcs=["cxr-serve result", source_sop_uid]))


def result_instance_uid(source_sop_uid: str) -> str:
    """The preliminary SR's SOP Instance UID for one source image: the idempotency key of its delivery."""
    return str(generate_uid(entropy_srcs=["cxr-serve preliminary SR", source_sop_uid]))


@dataclass(frozen=True)
class Analysis:
    """What the gateway answered for one instance: its `cxr` object and the report text."""

    cxr: dict[str, Any]
    report: str


def _algorithm(models: list[dict[str, Any]], role: str) -> hd.sr.AlgorithmIdentification:
    model = next(m for m in models if m["role"] == role)
    sha = model.get("sha256") or "unknown"
    return hd.sr.AlgorithmIdentification(name=model["name"], version=sha[:16], parameters=[f"sha256={sha}"])


def _group(source: Dataset, name: str, algorithm: hd.sr.AlgorithmIdentification, finding: Code, **content: Any) -> Any:
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=generate_uid(entropy_srcs=["cxr-serve tracking", str(source.SOPInstanceUID), name]), identifier=name
        ),
        algorithm_id=algorithm,
        finding_type=finding,
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(source)],
        **content,
    )


def _classification_group(source: Dataset, analysis: Analysis) -> Any:
    classification = analysis.cxr["classification"]
    predicted = CLASS_CODES.get(classification["predicted_class"], Code(classification["predicted_class"], SCHEME, "class"))
    probability = hd.sr.Measurement(
        name=PROBABILITY, value=round(float(classification["probabilities"].get("PNEUMONIA", 0.0)), 6), unit=NO_UNITS
    )
    evaluation = hd.sr.QualitativeEvaluation(name=PREDICTED_CLASS, value=predicted)
    algorithm = _algorithm(analysis.cxr["models"], "classifier")
    return _group(
        source, "pneumonia classifier", algorithm, PNEUMONIA, measurements=[probability], qualitative_evaluations=[evaluation]
    )


def _fracture_group(source: Dataset, analysis: Analysis) -> Any | None:
    fracture = analysis.cxr.get("fracture")
    if fracture is None:  # the fracture stage failed: nothing is said about fractures
        return None
    evaluation = hd.sr.QualitativeEvaluation(name=FRACTURE, value=DESCRIBED if fracture["suspected"] else NOT_DETECTED)
    algorithm = _algorithm(analysis.cxr["models"], "fracture")
    group = _group(source, "fracture model", algorithm, FRACTURE, qualitative_evaluations=[evaluation])
    text = hd.sr.TextContentItem(name=FRACTURE_TEXT, value=fracture["text"], relationship_type="CONTAINS")
    group[0].ContentSequence.append(text)  # ChexFract's words, verbatim, beside the flag parsed from them
    return group


def _texts(analysis: Analysis) -> hd.sr.ContainerContentItem:
    container = hd.sr.ContainerContentItem(name=QUALITATIVE_EVALUATIONS, relationship_type="CONTAINS")
    container.ContentSequence = Sequence(
        [
            hd.sr.TextContentItem(name=REPORT, value=analysis.report, relationship_type="CONTAINS"),
            hd.sr.TextContentItem(name=DISCLAIMER, value=analysis.cxr["disclaimer"], relationship_type="CONTAINS"),
        ]
    )
    return container


# What an SR must copy from its image. Type 1 must have a value: without one no SR can reference the image.
# Type 2 must be present but may be empty, and images often lack them (no birth date, no accession number):
# the SR carries them empty, as PS3.3 allows, rather than failing (highdicom reads each one).
TYPE_1 = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
TYPE_2 = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)


class SourceIncomplete(ValueError):
    """The image lacks a Type 1 attribute an SR must reference; the message names which."""


def _completed(source: Dataset) -> Dataset:
    missing = [keyword for keyword in TYPE_1 if not source.get(keyword)]
    if missing:
        raise SourceIncomplete(f"the image has no {', '.join(missing)}: an SR cannot reference it")
    completed = Dataset()  # a dataset of its own over the same elements: the image itself is not changed
    for element in source:
        completed.add(element)
    for keyword in TYPE_2:
        if keyword not in completed:
            setattr(completed, keyword, "")
    return completed


def build(source: Dataset, analysis: Analysis, series_number: int = 990) -> Dataset:
    """The SR for one analysed instance; `source` is the image itself (its study and patient modules are copied)."""
    source = _completed(source)
    device = hd.sr.DeviceObserverIdentifyingAttributes(uid=DEVICE_UID, name="cxr-serve", manufacturer_name="cxr-serve")
    context = hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(observer_type=codes.DCM.Device, observer_identifying_attributes=device)
    )
    groups = [g for g in (_classification_group(source, analysis), _fracture_group(source, analysis)) if g is not None]
    report = hd.sr.MeasurementReport(observation_context=context, procedure_reported=CHEST_XRAY, imaging_measurements=groups)
    report[0].ContentSequence.append(_texts(analysis))
    sr = hd.sr.ComprehensiveSR(
        evidence=[source],
        content=report[0],
        series_instance_uid=result_series_uid(str(source.SOPInstanceUID)),
        series_number=series_number,
        sop_instance_uid=result_instance_uid(str(source.SOPInstanceUID)),
        instance_number=1,
        manufacturer="cxr-serve",
        is_complete=False,  # preliminary AI output
        is_final=False,
        is_verified=False,
    )
    sr.SeriesDescription = SERIES_DESCRIPTION
    sr.SeriesDate, sr.SeriesTime = sr.ContentDate, sr.ContentTime  # when it was made: the worklist's order
    return sr


def source_uid(sr: Dataset) -> UID:
    """The SOP Instance UID of the image an SR of ours was made from."""
    series = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    return UID(series.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
