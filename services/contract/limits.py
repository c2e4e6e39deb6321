"""The input limits every service of the stack enforces: one set of fields and defaults.

The gateway, the classifier worker and the bridge inherit them into their own settings, so each reads them
under its own prefix (GATEWAY_MAX_IMAGE_PIXELS, CLASSIFIER_DICOM_MODALITIES, CXR_BRIDGE_DICOM_BODY_PARTS, ...)
and validates them at start-up the same way. `DicomLimits` is what an image is checked against;
`InputLimits` adds what an HTTP service limits besides.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from services.contract.dicom import DEFAULT_BODY_PARTS, DEFAULT_MODALITIES, DicomPolicy


class DicomLimits(BaseModel):
    # A 43 x 35 cm detector at 0.1 mm pitch is ~15 Mpx; 40 Mpx leaves room and stops decompression bombs.
    max_image_pixels: int = Field(default=40_000_000, ge=1)
    # DICOM input: the modalities and body parts analysed (comma-separated; an empty body-part list accepts
    # any). Defaults: DicomPolicy's (CR, DX; CHEST). Anything else is refused, naming the value.
    dicom_modalities: str = DEFAULT_MODALITIES
    dicom_body_parts: str = DEFAULT_BODY_PARTS

    def dicom_policy(self) -> DicomPolicy:
        return DicomPolicy.configured(self.max_image_pixels, self.dicom_modalities, self.dicom_body_parts)


class InputLimits(DicomLimits):
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)  # a request body; beyond: 413
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)  # all request headers together; beyond: 431
