"""Image URLs the gateway would fetch (OWASP API7:2023, server-side request forgery): only from listed hosts,
never from this machine or a link-local address, no redirect followed, no body beyond the limit. The image
server is a real HTTP server (the standard library's) on this machine's own network address."""

from __future__ import annotations

import http.server
import subprocess
import threading
from collections.abc import Iterator

import httpx
import pytest

from scripts.launcher.process import free_port
from tests.conftest import gateway_url
from tests.gateway.conftest import xray_message

SAMPLE = "NORMAL2-IM-1427-0001.jpeg"
LIMIT = 2 * 1024 * 1024


def network_address() -> str:
    """This machine's first global IPv4 address: not loopback, so a listed host that may be fetched from."""
    shown = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True).stdout
    addresses = [line.split()[3].split("/")[0] for line in shown.splitlines()]
    assert addresses, "the remote-image test needs a non-loopback IPv4 address on this machine (ip -4 addr)"
    return addresses[0]


@pytest.fixture(scope="module")
def image_server(sample_images, stack) -> Iterator[str]:
    internal = f"{gateway_url(stack)}/metrics"

    class Images(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", internal)
                self.end_headers()
                return
            body = sample_images[SAMPLE] if self.path == "/xray.jpeg" else b"\xff" * (LIMIT + 1)
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    address = network_address()
    server = http.server.ThreadingHTTPServer((address, free_port()), Images)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"{address}:{server.server_port}"
    server.shutdown()


def classify(gateway: str, url: str) -> httpx.Response:
    body = {"model": "pneumonia-classifier", "messages": xray_message(b"")}
    body["messages"][0]["content"][0]["image_url"]["url"] = url
    return httpx.post(f"{gateway}/v1/chat/completions", json=body, timeout=60)


def test_only_listed_hosts_no_redirects_no_internal_addresses_no_huge_bodies(start_gateway, image_server, stack):
    host, port = image_server.rsplit(":", 1)
    gateway = start_gateway(GATEWAY_REMOTE_IMAGE_HOSTS=f"{host},localhost,169.254.169.254", GATEWAY_MAX_BODY_BYTES=str(LIMIT)).url
    assert classify(gateway, f"http://{image_server}/xray.jpeg").status_code == 200
    refusals = {
        f"http://{image_server}/redirect": "answered 302",  # to the stack's own /metrics: not followed
        f"http://localhost:{port}/xray.jpeg": "resolves to an internal address",  # listed, but this machine
        "http://169.254.169.254/latest/meta-data/": "resolves to an internal address",  # listed, but link-local
        "http://pacs.elsewhere.example/x.jpeg": "not an allowed image host",
        f"http://{image_server}/huge": f"exceeds {LIMIT} bytes",
    }
    for url, why in refusals.items():
        answer = classify(gateway, url)
        assert answer.status_code == 400 and why in answer.json()["error"]["message"], (url, answer.text)
    assert "http(s) image URLs are disabled" in classify(gateway_url(stack), f"http://{image_server}/xray.jpeg").text
