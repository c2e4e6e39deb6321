"""Hostile and unusual images made on the fly from the real samples."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def decoded(jpeg: bytes) -> Image.Image:
    return Image.open(io.BytesIO(jpeg))


def truncated(jpeg: bytes) -> bytes:
    return jpeg[: len(jpeg) // 2]


def decompression_bomb(pixels_side: int = 8000) -> bytes:
    """A few kilobytes of PNG that decode to 64 Mpx: refused from its header alone."""
    return encode(Image.new("1", (pixels_side, pixels_side)))


def sixteen_bit(jpeg: bytes) -> bytes:
    grey = np.asarray(decoded(jpeg).convert("L"), dtype=np.uint16) * 257
    return encode(Image.fromarray(grey.astype(np.uint16)))


def grayscale(jpeg: bytes) -> bytes:
    return encode(decoded(jpeg).convert("L"))


def rgba(jpeg: bytes) -> bytes:
    return encode(decoded(jpeg).convert("RGBA"))


def palette(jpeg: bytes) -> bytes:
    return encode(decoded(jpeg).convert("RGB").convert("P"))


def gif(jpeg: bytes) -> bytes:
    return encode(decoded(jpeg).convert("RGB"), "GIF")


def thumbnail(jpeg: bytes, side: int = 48) -> bytes:
    """The X-ray shrunk below what any radiograph is: a picture, but not a chest X-ray."""
    return encode(decoded(jpeg).resize((side, side)))
