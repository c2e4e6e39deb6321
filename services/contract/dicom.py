"""A DICOM Part 10 chest X-ray → the 8-bit greyscale picture the models see, and the UIDs that name it.

The display pipeline of PS3.3 C.11, in order: stored values → Modality LUT or
rescale (C.11.1) → the first VOI LUT, else the first window (C.11.2; a VOI LUT
is preferred, as pydicom does) → MONOCHROME1 inverted, so that bone is always
bright, as in the JPEGs the models learnt from. Without any VOI the stored
range is stretched (8-bit MONOCHROME2 data is kept as it is).

Everything is checked from the header before a pixel is decoded: that it is a
single-frame greyscale image of an accepted modality and body part, with pixel
data, within the pixel limit. Patient identifiers are read by nothing here and
never leave this module: `DicomReferences` carries UIDs only.

Decoders: pydicom's own (native, deflated, RLE), Pillow (JPEG baseline), and
pylibjpeg-openjpeg (JPEG 2000; MIT). No GPL decoder is installed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels.processing import apply_modality_lut, apply_voi_lut
from pydicom.uid import UID

from services.contract import images
from services.contract.images import ImageError

DICOMDIR_CLASS = UID("1.2.840.10008.1.3.10")
GREYSCALE = ("MONOCHROME1", "MONOCHROME2")


class DicomRejected(ImageError):
    """A DICOM object this service will not analyse; the message names the reason (a 4xx)."""


@dataclass(frozen=True)
class DicomPolicy:
    max_pixels: int
    modalities: frozenset[str] = frozenset({"DX", "CR"})
    body_parts: frozenset[str] = frozenset({"CHEST"})  # empty: any body part

    @classmethod
    def configured(cls, max_pixels: int, modalities: str, body_parts: str) -> DicomPolicy:
        """From comma-separated settings (GATEWAY_DICOM_*, CLASSIFIER_DICOM_*), case-insensitive."""

        def values(listed: str) -> frozenset[str]:
            return frozenset(v.strip().upper() for v in listed.split(",") if v.strip())

        return cls(max_pixels, values(modalities), values(body_parts))


DEFAULT_MODALITIES = ",".join(sorted(DicomPolicy.modalities))
DEFAULT_BODY_PARTS = ",".join(sorted(DicomPolicy.body_parts))


class DicomReferences(BaseModel):
    """The DICOM instance analysed, by UID: never the patient's name, ID or birth date.

    One type from the decoder to the answer's `cxr.source` (and the SR and FHIR built from it).
    """

    model_config = ConfigDict(frozen=True)

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    modality: str


@dataclass(frozen=True)
class DicomImage:
    pixels: Image.Image  # 8-bit greyscale ("L"), bone bright: what the models and the viewer see
    references: DicomReferences

    def png(self) -> bytes:
        out = io.BytesIO()
        # Level 1: several times faster than Pillow's default 6 for a slightly larger file; lossless either way.
        self.pixels.save(out, format="PNG", compress_level=1)
        return out.getvalue()


def is_dicom(data: bytes) -> bool:
    """A Part 10 file: 128-byte preamble, then "DICM"."""
    return len(data) >= 132 and data[128:132] == b"DICM"


def decode_xray(data: bytes, policy: DicomPolicy) -> Image.Image:
    """A JPEG, PNG or DICOM chest X-ray, decoded to the picture the models see (CPU-bound)."""
    return read(data, policy).pixels if is_dicom(data) else images.decode(data, policy.max_pixels)


def check(data: bytes, policy: DicomPolicy) -> DicomReferences:
    """The header checks alone (what `read` refuses before decoding a pixel), and the instance's UIDs."""
    return _check(_parse(data), policy)


def read(data: bytes, policy: DicomPolicy) -> DicomImage:
    dataset = _parse(data)
    references = _check(dataset, policy)
    return DicomImage(pixels=_to_8bit(dataset, _decode(dataset)), references=references)


def _parse(data: bytes) -> Dataset:
    try:
        return dcmread(io.BytesIO(data), force=False)
    except InvalidDicomError:
        raise DicomRejected("not a DICOM Part 10 file (no DICM preamble)") from None
    except (EOFError, OSError, ValueError, KeyError, TypeError, NotImplementedError) as error:
        raise DicomRejected(f"truncated or malformed DICOM file ({type(error).__name__})") from None


def _text(dataset: Dataset, keyword: str) -> str:
    value = dataset.get(keyword)
    return str(value).strip().upper() if value is not None else ""


def _listed(values: frozenset[str]) -> str:
    return ", ".join(sorted(values))


def _check(dataset: Dataset, policy: DicomPolicy) -> DicomReferences:
    sop_class = str(dataset.file_meta.get("MediaStorageSOPClassUID", dataset.get("SOPClassUID", "")))
    if sop_class == DICOMDIR_CLASS or "DirectoryRecordSequence" in dataset:
        raise DicomRejected("a DICOMDIR is an index of files, not an image: send the image files themselves")
    if "SOPClassUID" not in dataset or "TransferSyntaxUID" not in dataset.file_meta:
        # pydicom stops at an unexpected end of file and keeps what it read, which may be nothing
        raise DicomRejected("truncated or malformed DICOM file: no SOP Class or transfer syntax could be read")
    modality = _text(dataset, "Modality")
    if modality not in policy.modalities:
        raise DicomRejected(f"modality {modality or '(none)'} is not analysed; accepted: {_listed(policy.modalities)}")
    body_part = _text(dataset, "BodyPartExamined")
    if policy.body_parts and body_part not in policy.body_parts:
        raise DicomRejected(f"body part {body_part or '(none)'} is not analysed; accepted: {_listed(policy.body_parts)}")
    if "PixelData" not in dataset:
        raise DicomRejected("the DICOM object has no pixel data")
    _check_pixel_header(dataset, policy.max_pixels)
    return DicomReferences(
        study_instance_uid=str(dataset.get("StudyInstanceUID", "")),
        series_instance_uid=str(dataset.get("SeriesInstanceUID", "")),
        sop_instance_uid=str(dataset.get("SOPInstanceUID", "")),
        sop_class_uid=str(dataset.get("SOPClassUID", "")),
        modality=modality,
    )


def _check_pixel_header(dataset: Dataset, max_pixels: int) -> None:
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    if frames != 1:
        raise DicomRejected(f"multi-frame object ({frames} frames): one radiograph per file is analysed")
    photometric = _text(dataset, "PhotometricInterpretation")
    if photometric not in GREYSCALE or int(dataset.get("SamplesPerPixel", 1)) != 1:
        raise DicomRejected(f"photometric interpretation {photometric or '(none)'}: a radiograph is MONOCHROME1 or 2")
    bits = int(dataset.get("BitsStored", 0))
    if not 1 <= bits <= 16:
        raise DicomRejected(f"BitsStored {bits}: 1 to 16 bits are supported")
    rows, columns = int(dataset.get("Rows", 0)), int(dataset.get("Columns", 0))
    if rows * columns == 0:
        raise DicomRejected("the DICOM header gives no image size (Rows, Columns)")
    images.check_size(columns, rows, max_pixels)
    _check_native_length(dataset, rows * columns)


def _check_native_length(dataset: Dataset, pixels: int) -> None:
    """Uncompressed pixel data shorter than the header says is a file cut short (pydicom keeps what it read)."""
    syntax = dataset.file_meta.get("TransferSyntaxUID")
    if syntax is None or UID(syntax).is_compressed:
        return  # encapsulated frames are checked when they are decoded
    bits = int(dataset.get("BitsAllocated", 8))
    expected = (pixels + 7) // 8 if bits == 1 else pixels * ((bits + 7) // 8)
    received = len(dataset.PixelData)
    if received < expected:
        raise DicomRejected(f"truncated pixel data: {received} of {expected} bytes")


def _decode(dataset: Dataset) -> np.ndarray:
    syntax = dataset.file_meta.get("TransferSyntaxUID")
    try:
        pixels: np.ndarray = dataset.pixel_array
    except NotImplementedError:
        raise DicomRejected(f"transfer syntax {syntax} cannot be decoded here") from None
    except (ValueError, EOFError, OSError, RuntimeError, KeyError, TypeError, AttributeError) as error:
        raise DicomRejected(f"pixel data could not be decoded ({type(error).__name__}): truncated or corrupt") from None
    expected = (int(dataset.Rows), int(dataset.Columns))
    if pixels.shape != expected:
        raise DicomRejected(f"pixel data is {pixels.shape}, the header says {expected}")
    return pixels


def _to_8bit(dataset: Dataset, stored: np.ndarray) -> Image.Image:
    modality = np.asarray(apply_modality_lut(stored, dataset))
    values = modality.astype(np.float64)
    if dataset.get("VOILUTSequence"):
        lut_bits = int(dataset.VOILUTSequence[0].LUTDescriptor[2])
        indices = np.rint(modality).astype(np.int64) if modality.dtype.kind == "f" else modality  # a LUT is indexed
        unit = np.asarray(apply_voi_lut(indices, dataset, index=0, prefer_lut=True), dtype=np.float64) / (2**lut_bits - 1)
    elif "WindowCenter" in dataset and "WindowWidth" in dataset:
        unit = _window(values, dataset)
    elif int(dataset.BitsStored) == 8 and int(dataset.get("PixelRepresentation", 0)) == 0 and "RescaleSlope" not in dataset:
        unit = values / 255.0
    else:
        low, high = float(values.min()), float(values.max())
        unit = (values - low) / (high - low) if high > low else np.zeros_like(values)
    if _text(dataset, "PhotometricInterpretation") == "MONOCHROME1":
        unit = 1.0 - unit  # MONOCHROME1: the minimum value is white
    return Image.fromarray(np.rint(np.clip(unit, 0.0, 1.0) * 255.0).astype(np.uint8), mode="L")


def _first(value: object) -> float:
    """The first of several windows (a multi-valued DS), or the only one."""
    return float(value[0] if isinstance(value, MultiValue) else value)  # type: ignore[arg-type]


def _window(values: np.ndarray, dataset: Dataset) -> np.ndarray:
    """The first window (PS3.3 C.11.2.1.2-3), onto 0..1: LINEAR (default), LINEAR_EXACT or SIGMOID."""
    center, width = _first(dataset.WindowCenter), _first(dataset.WindowWidth)
    function = _text(dataset, "VOILUTFunction") or "LINEAR"
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    if function == "LINEAR":
        if width < 1:
            raise DicomRejected(f"window width {width} is below 1")
        center, width = center - 0.5, width - 1.0
    elif width <= 0:
        raise DicomRejected(f"window width {width} is not positive")
    if width == 0:  # LINEAR with width 1: a threshold
        return (values > center).astype(np.float64)
    return np.clip((values - center) / width + 0.5, 0.0, 1.0)
