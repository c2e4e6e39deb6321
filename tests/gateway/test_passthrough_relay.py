"""The pass-through relay against model servers that misbehave (small HTTP peers on 127.0.0.1, no model):
a plain answer cut half-way is a 502 naming the backend, never a cut 200; a server's own 400 comes back with
its status and body; the body goes to the server byte for byte, only its `model` read by the gateway."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from tests.http_peers import reply, serve

REFUSAL = b'{"error": {"message": "max_tokens is too large", "type": "BadRequestError"}}'
ANSWER = json.dumps({"id": "x", "object": "chat.completion", "choices": [], "model": "report-llm"}).encode()


class ModelServer:
    """Answers POST /v1/chat/completions as told (`mode`), keeping each body it was sent."""

    def __init__(self) -> None:
        self.mode = "whole"
        self.received: list[bytes] = []
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # /health, /v1/models: the gateway's readiness checks
                reply(self, 200, json.dumps({"object": "list", "data": [{"id": "report-llm"}]}).encode(), "application/json")

            def do_POST(self) -> None:
                peer.received.append(self.rfile.read(int(self.headers["Content-Length"])))
                if peer.mode == "refuse":
                    reply(self, 400, REFUSAL, "application/json")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(ANSWER)))
                self.end_headers()
                self.wfile.write(ANSWER if peer.mode == "whole" else ANSWER[: len(ANSWER) // 2])  # "cut": then it closes
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.server, self.url = serve(Handler)


@pytest.fixture(scope="module")
def model_server() -> Iterator[ModelServer]:
    peer = ModelServer()
    yield peer
    peer.server.shutdown()


@pytest.fixture(scope="module")
def gateway(start_gateway_without_models, model_server):
    return start_gateway_without_models(GATEWAY_REPORT_URL=model_server.url)


def _post(gateway, body: bytes) -> httpx.Response:
    headers = {"content-type": "application/json"}
    return httpx.post(f"{gateway.url}/v1/chat/completions", content=body, headers=headers, timeout=30)


def test_the_body_goes_to_the_model_server_byte_for_byte_and_its_answer_comes_back(gateway, model_server):
    model_server.mode = "whole"
    body = b'{"model":"report-llm",  "messages":[{"role":"user","content":"hi"}], "vendor_field": [1, 2]}'
    answer = _post(gateway, body)
    assert (answer.status_code, answer.content) == (200, ANSWER)
    assert answer.headers["content-length"] == str(len(ANSWER))  # read whole, then sent whole
    assert model_server.received[-1] == body


def test_a_model_servers_own_refusal_comes_back_with_its_status_and_body(gateway, model_server):
    model_server.mode = "refuse"
    answer = _post(gateway, b'{"model": "report-llm", "messages": [], "max_tokens": 100000}')
    assert answer.status_code == 400 and answer.json()["error"]["message"] == "max_tokens is too large"


def test_a_plain_answer_cut_half_way_is_a_502_naming_the_backend_never_a_cut_200(gateway, model_server):
    model_server.mode = "cut"
    answer = _post(gateway, b'{"model": "report-llm", "messages": [{"role": "user", "content": "hi"}]}')
    assert answer.status_code in (502, 503), answer.status_code
    assert "report" in answer.json()["error"]["message"]
    model_server.mode = "whole"
    assert _post(gateway, b'{"model": "report-llm", "messages": [{"role": "user", "content": "hi"}]}').status_code == 200


def test_what_routes_a_request_is_still_checked_by_the_gateway(gateway):
    assert _post(gateway, b'{"messages": []}').status_code == 400  # no model
    assert _post(gateway, b"not json").status_code == 400
    unknown = _post(gateway, b'{"model": "gpt-x", "messages": []}')
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
