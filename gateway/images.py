"""The X-ray in a chat request: where it may come from, and the checks before any backend sees it.

Accepted: a base64 `data:` URI of a JPEG or PNG; `file://` only under the
configured image folder; `http(s)` only when an operator enabled remote
images (the stack must not fetch from outside by default). The pixel count is
read from the header, in a worker thread, before anything decodes pixels.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx2

from gateway.errors import ImageRejected
from gateway.protocol import ChatRequest
from services.contract import images

_DATA_URI = re.compile(r"^data:(?P<mime>image/(?:jpeg|jpg|png));base64,(?P<data>.*)$", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class ImagePolicy:
    max_bytes: int
    max_pixels: int
    image_folder: Path | None
    allow_remote: bool
    remote_timeout_s: float


@dataclass(frozen=True)
class XrayInput:
    image: bytes
    mime: str
    text: str  # the clinical indication or question, may be empty


def split_last_user_message(request: ChatRequest) -> tuple[list[str], str]:
    """Image URLs and joined text of the last user message."""
    user = next((m for m in reversed(request.messages) if m.role == "user"), None)
    if user is None:
        raise ImageRejected("no user message: the last user message must carry the X-ray", param="messages")
    if isinstance(user.content, str) or user.content is None:
        return [], user.content or ""
    urls = [p.image_url.url for p in user.content if p.type == "image_url" and p.image_url is not None]
    if any(p.type == "image_url" and p.image_url is None for p in user.content):
        raise ImageRejected("an image_url part has no image_url.url", param="messages")
    text = "\n".join(p.text for p in user.content if p.type == "text" and p.text)
    return urls, text


def decode_data_uri(url: str, max_bytes: int) -> tuple[bytes, str]:
    match = _DATA_URI.match(url)
    if not match:
        raise ImageRejected("image_url must be a data:image/jpeg or data:image/png base64 URI", param="messages")
    encoded = match.group("data")
    if len(encoded) * 3 // 4 > max_bytes:
        raise ImageRejected(f"image is larger than {max_bytes} bytes", param="messages")
    try:
        image = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ImageRejected("image_url data is not valid base64", param="messages") from None
    return image, match.group("mime").lower().replace("jpg", "jpeg")


def read_allowed_file(url: str, folder: Path | None, max_bytes: int) -> bytes:
    if folder is None:
        raise ImageRejected("file:// image URLs are disabled (set GATEWAY_IMAGE_FOLDER to allow one folder)")
    path = Path(unquote(urlparse(url).path)).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise ImageRejected("file:// image URL is outside the allowed image folder", param="messages")
    if not path.is_file():
        raise ImageRejected("file:// image URL names no file", param="messages")
    if path.stat().st_size > max_bytes:
        raise ImageRejected(f"image is larger than {max_bytes} bytes", param="messages")
    return path.read_bytes()


def check_image(image: bytes, max_pixels: int, param: str = "messages") -> str:
    """The MIME type of a JPEG/PNG within the pixel limit (header only; no pixel is decoded)."""
    try:
        return images.mime_type(image, max_pixels)
    except images.ImageError as error:
        raise ImageRejected(str(error), param=param) from None


async def _fetch_remote(url: str, policy: ImagePolicy) -> bytes:
    async with httpx2.AsyncClient(timeout=policy.remote_timeout_s, follow_redirects=False) as client:
        try:
            response = await client.get(url)
        except httpx2.HTTPError as error:
            raise ImageRejected(f"could not fetch image URL ({type(error).__name__})", param="messages") from None
    if response.status_code != 200 or len(response.content) > policy.max_bytes:
        raise ImageRejected(f"image URL answered {response.status_code} or is too large", param="messages")
    return response.content


async def load_xray(request: ChatRequest, policy: ImagePolicy) -> XrayInput:
    urls, text = split_last_user_message(request)
    if len(urls) != 1:
        raise ImageRejected(f"the last user message must carry exactly one image, found {len(urls)}", param="messages")
    url = urls[0]
    scheme = url.split(":", 1)[0].lower()
    if scheme == "data":
        image, _ = decode_data_uri(url, policy.max_bytes)
    elif scheme == "file":
        image = await asyncio.to_thread(read_allowed_file, url, policy.image_folder, policy.max_bytes)
    elif scheme in ("http", "https") and policy.allow_remote:
        image = await _fetch_remote(url, policy)
    elif scheme in ("http", "https"):
        raise ImageRejected("http(s) image URLs are disabled: send the image as a data: URI", param="messages")
    else:
        raise ImageRejected(f"unsupported image URL scheme {scheme!r}", param="messages")
    mime = await asyncio.to_thread(check_image, image, policy.max_pixels)
    return XrayInput(image=image, mime=mime, text=text)


async def load_upload(image: bytes, policy: ImagePolicy) -> XrayInput:
    """An image uploaded to /v1/analyze: the same checks as a chat image."""
    if not image:
        raise ImageRejected("empty upload: expected a JPEG or PNG file", param="file")
    mime = await asyncio.to_thread(check_image, image, policy.max_pixels, "file")
    return XrayInput(image=image, mime=mime, text="")


def data_uri(xray: XrayInput) -> str:
    """The X-ray as a data URI for a vLLM backend (which must not fetch URLs either)."""
    return f"data:{xray.mime};base64,{base64.b64encode(xray.image).decode()}"
