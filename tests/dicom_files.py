"""DICOM Part 10 files built from a packaged JPEG X-ray, in the encodings a PACS sends.

Each variant stores the same picture differently (bit depth, window, polarity,
transfer syntax), so a correct reader must give back what the JPEG shows.
Patient identifiers are planted in every patient and study text field, so a
test can grep every log and answer for them.
"""

from __future__ import annotations

import base64
import datetime as dt
import io

import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
    generate_uid,
)

# Identifiers that must never reach a log or an answer.
PATIENT = {
    "PatientName": "Zhang^Wei^Secret",
    "PatientID": "MRN-SECRET-4711",
    "PatientBirthDate": "19510203",
    "OtherPatientIDs": "ALT-SECRET-0815",
    "PatientAddress": "42 Secret Lane",
    "ReferringPhysicianName": "Dr^Secret^Referrer",
    "InstitutionName": "Secret General Hospital",
    "AccessionNumber": "ACC-SECRET-99",
    "StudyDescription": "CHEST PA Zhang Wei MRN-SECRET-4711",
    "StudyID": "SECRET-STUDY",
}
# What is searched for: distinctive strings only ("4711" alone turns up in random hex request ids).
SECRETS = ("Zhang", "Secret", "SECRET", "MRN-SECRET-4711", "19510203", "ALT-SECRET-0815")

VARIANTS = (
    "mono2-8bit",
    "mono2-12bit-window",
    "signed-16bit-rescale",
    "voi-lut-10bit",
    "mono1",
    "jpeg-baseline",
    "jpeg2000",
    "rle",
    "deflated",
    "implicit-vr",
)


def _base(rows: int, columns: int, study_uid: str | None, modality: str, body_part: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    ds.SOPClassUID = DigitalXRayImageStorageForPresentation
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    ds.BodyPartExamined = body_part
    # today: a PACS watcher looks at recent studies only
    ds.StudyDate, ds.StudyTime = dt.date.today().strftime("%Y%m%d"), "101500"
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    for keyword, value in PATIENT.items():
        setattr(ds, keyword, value)
    ds.PatientSex = "O"
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PixelRepresentation = 0
    return ds


def _pixels(ds: Dataset, stored: np.ndarray, photometric: str, bits: int) -> None:
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 8 if bits == 8 else 16
    ds.BitsStored, ds.HighBit = bits, bits - 1
    ds.PixelData = stored.astype(np.uint8 if bits == 8 else np.uint16).tobytes()


def from_jpeg(
    jpeg: bytes, variant: str, *, study_uid: str | None = None, modality: str = "DX", body_part: str = "CHEST"
) -> bytes:
    grey = np.asarray(Image.open(io.BytesIO(jpeg)).convert("L"))
    ds = _base(*grey.shape, study_uid, modality, body_part)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if variant == "mono2-12bit-window":
        # 12 bits stored, and a window that maps them back onto the picture's 8 bits
        _pixels(ds, grey.astype(np.uint16) * 16, "MONOCHROME2", 12)
        ds.WindowCenter, ds.WindowWidth = [2040.5, 1000.0], [4081.0, 2000.0]  # the first window applies
    elif variant == "signed-16bit-rescale":
        # signed stored values, a rescale to another range, and the window that covers it exactly
        _pixels(ds, (grey.astype(np.int32) * 64 - 8192).astype(np.int16).view(np.uint16), "MONOCHROME2", 16)
        ds.PixelRepresentation = 1
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 0.5, 100, "US"
        ds.WindowCenter, ds.WindowWidth = 84.5, 8161  # modality values -3996..4164 onto 0..255
    elif variant == "voi-lut-10bit":
        _pixels(ds, grey.astype(np.uint16) * 4, "MONOCHROME2", 10)
        lut = Dataset()
        lut.LUTDescriptor = [1021, 0, 16]  # 1021 entries from 0, 16-bit output
        lut.add_new("LUTData", "US", [value // 4 * 257 for value in range(1021)])
        ds.VOILUTSequence = [lut]
        ds.WindowCenter, ds.WindowWidth = 100, 50  # a VOI LUT is preferred over a window
    elif variant == "mono1":
        _pixels(ds, 255 - grey, "MONOCHROME1", 8)
    elif variant == "jpeg-baseline":
        _pixels(ds, grey, "MONOCHROME2", 8)
        ds.PixelData = encapsulate([jpeg])  # the packaged JPEG's own bytes
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    else:
        _pixels(ds, grey, "MONOCHROME2", 8)
    if variant == "jpeg2000":
        ds.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg")
    elif variant == "rle":
        ds.compress(RLELossless, encoding_plugin="pydicom")
    elif variant == "deflated":
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    elif variant == "implicit-vr":
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    return _write(ds)


def _write(ds: Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def dicom_uri(dicom: bytes) -> str:
    return f"data:application/dicom;base64,{base64.b64encode(dicom).decode()}"


def with_changes(dicom: bytes, **changes: object) -> bytes:
    """The same file with header elements set (None deletes one)."""
    ds = dcmread(io.BytesIO(dicom))
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    return _write(ds)
