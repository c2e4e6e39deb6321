"""The X-ray in a chat request: where it may come from, and the checks before any backend sees it.

Accepted: a base64 `data:` URI of a JPEG, PNG or DICOM Part 10 file; `file://`
only under the configured image folder; `http(s)` only from the hosts an operator
listed (the stack fetches from nowhere by default). The pixel
count is read from the header, in a worker thread, before anything decodes pixels.

A DICOM X-ray is turned into an 8-bit PNG here, once, with its VOI and polarity
applied (services/contract/dicom.py): every backend and the web page then see
the same picture, and the result names the instance by its UIDs only. The decoded
picture travels beside the PNG, so that the classifier's tensor is made from it
without decoding the PNG again.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx2
from PIL import Image

from gateway.errors import ImageRejected
from gateway.protocol import ChatRequest
from services.contract import dicom, images
from services.contract.dicom import DicomPolicy, DicomReferences

_DATA_URI = re.compile(
    r"^data:(?P<mime>image/(?:jpeg|jpg|png)|application/dicom);base64,(?P<data>.*)$", re.DOTALL | re.IGNORECASE
)


@dataclass(frozen=True)
class ImagePolicy:
    max_bytes: int
    max_pixels: int
    image_folder: Path | None
    remote_hosts: frozenset[str]  # the only hosts an http(s) image URL may name; empty: none
    remote_timeout_s: float
    dicom: DicomPolicy


@dataclass(frozen=True)
class XrayInput:
    image: bytes  # a JPEG or PNG (a DICOM arrives here already rendered to PNG)
    mime: str
    text: str  # the clinical indication or question, may be empty
    source: DicomReferences | None = None  # the DICOM instance it came from
    pixels: Image.Image | None = None  # a DICOM's decoded picture (what `image` encodes), decoded once


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


def decode_data_uri(url: str, max_bytes: int) -> bytes:
    match = _DATA_URI.match(url)
    if not match:
        raise ImageRejected(
            "image_url must be a data:image/jpeg, data:image/png or data:application/dicom base64 URI", param="messages"
        )
    encoded = match.group("data")
    if len(encoded) * 3 // 4 > max_bytes:
        raise ImageRejected(f"image is larger than {max_bytes} bytes", param="messages")
    try:
        image = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ImageRejected("image_url data is not valid base64", param="messages") from None
    return image  # its type is the bytes' own (accept_image), whatever the URI's MIME type says


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


def accept_image(image: bytes, text: str, policy: ImagePolicy, param: str) -> XrayInput:
    """A JPEG/PNG within the pixel limit (header only), or a DICOM checked and rendered to PNG. CPU-bound."""
    try:
        if dicom.is_dicom(image):
            rendered = dicom.read(image, policy.dicom)
            return XrayInput(
                image=rendered.png(), mime="image/png", text=text, source=rendered.references, pixels=rendered.pixels
            )
        return XrayInput(image=image, mime=images.mime_type(image, policy.max_pixels), text=text)
    except images.ImageError as error:
        raise ImageRejected(str(error), param=param) from None


async def _check_remote_host(url: str, policy: ImagePolicy) -> None:
    """Server-side request forgery (OWASP API7): only a listed host, and never one that resolves to this machine,
    a link-local address (cloud metadata) or a multicast or unspecified one, whatever the list says."""
    host = (urlparse(url).hostname or "").lower()
    if host not in policy.remote_hosts:
        raise ImageRejected(
            f"image URL host {host!r} is not an allowed image host (GATEWAY_REMOTE_IMAGE_HOSTS)", param="messages"
        )
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        raise ImageRejected(f"image URL host {host!r} does not resolve", param="messages") from None
    for address in {ipaddress.ip_address(info[4][0]) for info in found}:
        if address.is_loopback or address.is_link_local or address.is_multicast or address.is_unspecified:
            raise ImageRejected(f"image URL host {host!r} resolves to an internal address", param="messages")


async def _fetch_remote(url: str, policy: ImagePolicy) -> bytes:
    """One GET, no redirects followed (a 3xx is refused, wherever it points), no proxy, at most max_bytes read."""
    await _check_remote_host(url, policy)
    timeout = policy.remote_timeout_s
    async with httpx2.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        try:
            async with client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise ImageRejected(f"image URL answered {response.status_code}", param="messages")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > policy.max_bytes:
                        raise ImageRejected(f"image URL's body exceeds {policy.max_bytes} bytes", param="messages")
        except httpx2.HTTPError as error:
            raise ImageRejected(f"could not fetch image URL ({type(error).__name__})", param="messages") from None
    return bytes(body)


def _read(url: str, scheme: str, policy: ImagePolicy) -> bytes:
    if scheme == "data":
        return decode_data_uri(url, policy.max_bytes)
    return read_allowed_file(url, policy.image_folder, policy.max_bytes)


async def load_xray(request: ChatRequest, policy: ImagePolicy) -> XrayInput:
    urls, text = split_last_user_message(request)
    if len(urls) != 1:
        raise ImageRejected(f"the last user message must carry exactly one image, found {len(urls)}", param="messages")
    url = urls[0]
    scheme = url.split(":", 1)[0].lower()
    if scheme in ("data", "file"):
        # Megabytes of base64 (or a file) read and checked in one worker-thread call: CPU work off the event
        # loop, and one hand-over to the thread, not two.
        return await asyncio.to_thread(lambda: accept_image(_read(url, scheme, policy), text, policy, "messages"))
    if scheme in ("http", "https") and policy.remote_hosts:
        fetched = await _fetch_remote(url, policy)
        return await asyncio.to_thread(accept_image, fetched, text, policy, "messages")
    if scheme in ("http", "https"):
        raise ImageRejected("http(s) image URLs are disabled: send the image as a data: URI", param="messages")
    raise ImageRejected(f"unsupported image URL scheme {scheme!r}", param="messages")


async def load_upload(image: bytes, policy: ImagePolicy) -> XrayInput:
    """An image uploaded to /v1/analyze: the same checks as a chat image."""
    if not image:
        raise ImageRejected("empty upload: expected a JPEG, PNG or DICOM file", param="file")
    return await asyncio.to_thread(accept_image, image, "", policy, "file")


def data_uri(xray: XrayInput) -> str:
    """The X-ray as a data URI for a vLLM backend (which must not fetch URLs either)."""
    return f"data:{xray.mime};base64,{base64.b64encode(xray.image).decode()}"
