"""Untrusted image bytes → the model's input tensor, as its metadata describes.

Only the formats the worker accepts are ever parsed (Pillow is asked for JPEG
or PNG and nothing else), and the pixel count is checked from the header
before any pixel is decoded, so a decompression bomb costs nothing. These
functions are CPU-bound: the worker calls them in a thread pool, never on the
event loop.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

from services.contract.classifier_model import InputSpec

ACCEPTED_FORMATS = ("JPEG", "PNG")
# A chest radiograph is thousands of pixels a side; anything under 64 is not one (a thumbnail, an icon, a
# fuzzer's 1x1 PNG) and is refused before any model runs on it.
MIN_SIDE = 64
_RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


class ImageError(ValueError):
    """The bytes are not an image this worker accepts; the message says why (a 4xx)."""


class ImageTooLarge(ImageError):
    """More pixels than the configured limit (a possible decompression bomb)."""


def open_checked(data: bytes, max_pixels: int) -> Image.Image:
    """The image, opened lazily: format and pixel count read from the header, no pixel decoded yet."""
    if not data:
        raise ImageError("empty image: expected a JPEG or PNG image")
    try:
        image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except Image.DecompressionBombError:
        raise ImageTooLarge(f"image has more pixels than the limit of {max_pixels}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ImageError("image data is not a JPEG or PNG image") from None
    check_size(*image.size, max_pixels)
    return image


def check_size(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageTooLarge(f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}")
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"image is {width}x{height} pixels; a chest X-ray has at least {MIN_SIDE} pixels a side")


def mime_type(data: bytes, max_pixels: int) -> str:
    """The MIME type of a JPEG/PNG within the pixel limit (header only)."""
    with open_checked(data, max_pixels) as image:
        return f"image/{str(image.format).lower()}"


def decode(data: bytes, max_pixels: int) -> Image.Image:
    image = open_checked(data, max_pixels)
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as error:  # truncated or corrupt data
        raise ImageError(f"corrupt or truncated {image.format} image: {error}") from None
    return image


def _to_8bit(image: Image.Image) -> Image.Image:
    """16-bit grey (common for X-ray PNGs exported from DICOM) is stretched over its own range.

    Such files often hold 10-14 significant bits in a 16-bit container, so a
    fixed /257 would leave them nearly black; min-max to 8 bits is what the
    8-bit JPEGs the classifiers are trained on went through.
    """
    if image.mode not in ("I;16", "I;16B", "I;16L", "I"):
        return image
    pixels = np.asarray(image, dtype=np.float64)
    low, high = float(pixels.min()), float(pixels.max())
    scaled = (pixels - low) * (255.0 / (high - low)) if high > low else np.zeros_like(pixels)
    return Image.fromarray(scaled.astype(np.uint8), mode="L")


def to_tensor(image: Image.Image, spec: InputSpec) -> np.ndarray:
    """One image as a float32 array shaped like one batch row (HWC or CHW)."""
    image = _to_8bit(image).convert(spec.colour)  # grey, palette, RGBA → the model's colour mode
    image = image.resize((spec.width, spec.height), _RESAMPLING[spec.resize])
    scaled = np.asarray(image, dtype=np.float32).reshape(spec.height, spec.width, spec.channels) / np.float32(255.0)
    pixels = (scaled - np.asarray(spec.mean, dtype=np.float32)) / np.asarray(spec.std, dtype=np.float32)
    return pixels if spec.layout == "NHWC" else pixels.transpose(2, 0, 1)


def prepare(data: bytes, spec: InputSpec, max_pixels: int) -> np.ndarray:
    return to_tensor(decode(data, max_pixels), spec)
