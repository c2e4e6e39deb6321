"""DICOM decoding in the shared contract: every encoding a PACS sends gives back the same picture; bad objects are named."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from pydicom.uid import generate_uid

from services.contract import dicom
from services.contract.images import ImageTooLarge
from tests.conftest import SAMPLES
from tests.dicom_files import SECRETS, VARIANTS, from_jpeg, with_changes

JPEG = (SAMPLES / "person1946_bacteria_4874.jpeg").read_bytes()
GREY = np.asarray(Image.open(io.BytesIO(JPEG)).convert("L"))
POLICY = dicom.DicomPolicy(max_pixels=20_000_000)


@pytest.fixture(scope="module")
def plain() -> bytes:
    return from_jpeg(JPEG, "mono2-8bit")


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_encoding_gives_back_the_jpegs_own_pixels(variant):
    """Modality LUT, VOI LUT or first window, MONOCHROME1, signed and 10-16 bit, and six transfer syntaxes."""
    image = dicom.read(from_jpeg(JPEG, variant), POLICY)
    assert image.pixels.mode == "L" and image.pixels.size == (GREY.shape[1], GREY.shape[0])
    assert np.array_equal(np.asarray(image.pixels), GREY)


def test_the_png_is_the_same_picture(plain):
    png = dicom.read(plain, POLICY).png()
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), GREY)


def test_references_carry_uids_and_nothing_that_names_the_patient():
    study = generate_uid()
    image = dicom.read(from_jpeg(JPEG, "mono2-8bit", study_uid=study), POLICY)
    assert image.references.study_instance_uid == study and image.references.modality == "DX"
    assert all(secret not in repr(image.references) for secret in SECRETS)


def test_a_cr_image_and_other_configured_body_parts_are_accepted():
    cr = from_jpeg(JPEG, "mono2-8bit", modality="CR", body_part="THORAX")
    assert dicom.read(cr, dicom.DicomPolicy(max_pixels=POLICY.max_pixels, body_parts=frozenset({"CHEST", "THORAX"})))
    assert dicom.read(cr, dicom.DicomPolicy(max_pixels=POLICY.max_pixels, body_parts=frozenset()))  # any body part


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"Modality": "CT"}, "modality CT is not analysed"),
        ({"BodyPartExamined": "HEAD"}, "body part HEAD is not analysed"),
        ({"BodyPartExamined": None}, r"body part \(none\)"),
        ({"NumberOfFrames": 3}, "multi-frame object"),
        ({"PixelData": None}, "no pixel data"),
        ({"PhotometricInterpretation": "RGB"}, "photometric interpretation RGB"),
        ({"BitsStored": 0}, "BitsStored 0"),
        ({"Rows": 0}, "no image size"),
        ({"Rows": 4000}, r"truncated pixel data: \d+ of \d+ bytes"),  # the header says more than there is
    ],
)
def test_objects_that_are_not_a_chest_radiograph_are_refused_naming_why(plain, changes, reason):
    with pytest.raises(dicom.DicomRejected, match=reason):
        dicom.read(with_changes(plain, **changes), POLICY)


def test_the_pixel_limit_is_checked_from_the_header_before_decoding(plain):
    huge = with_changes(plain, Rows=60000, Columns=60000)  # 3.6 gigapixels claimed, 0.7 MB of data
    with pytest.raises(ImageTooLarge, match="60000x60000"):
        dicom.read(huge, POLICY)


def test_a_dicomdir_is_refused():
    directory = with_changes(from_jpeg(JPEG, "mono2-8bit"), SOPClassUID=str(dicom.DICOMDIR_CLASS))
    fake = directory.replace(b"1.2.840.10008.5.1.4.1.1.1.1\x00", b"1.2.840.10008.1.3.10\x00" + b"\x00" * 7, 1)
    with pytest.raises(dicom.DicomRejected, match="DICOMDIR"):
        dicom.read(fake, POLICY)


@pytest.mark.parametrize("cut", [140, 400, 0.6])
def test_truncated_files_are_refused(plain, cut):
    end = int(len(plain) * cut) if isinstance(cut, float) else cut
    with pytest.raises(dicom.DicomRejected):
        dicom.read(plain[:end], POLICY)


def test_a_truncated_compressed_image_is_refused():
    compressed = from_jpeg(JPEG, "jpeg2000")
    with pytest.raises(dicom.DicomRejected, match=r"truncated|malformed|decoded"):
        dicom.read(compressed[: len(compressed) - 50_000], POLICY)


def test_only_part_10_files_are_recognised(plain):
    assert dicom.is_dicom(plain) and not dicom.is_dicom(JPEG) and not dicom.is_dicom(b"DICM")
    with pytest.raises(dicom.DicomRejected, match="not a DICOM"):
        dicom.read(JPEG, POLICY)
    with pytest.raises(dicom.DicomRejected, match="malformed"):
        dicom.read(b"\0" * 128 + b"DICM" + b"garbage" * 10, POLICY)


def test_a_policy_from_settings_is_case_and_space_insensitive():
    policy = dicom.DicomPolicy.configured(10, " dx, Cr ,", "")
    assert policy == dicom.DicomPolicy(10, frozenset({"DX", "CR"}), frozenset())
    assert dicom.DEFAULT_MODALITIES == "CR,DX" and dicom.DEFAULT_BODY_PARTS == "CHEST"
