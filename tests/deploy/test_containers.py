"""The cpu compose stack in real containers, end to end (`make test-containers`;
docs/deployment.md, "Containers, tested end to end").

Builds the base image from Debian packages (the air-gapped build: no image registry is reached), builds the
cpu images from the repository as deploy/docker-compose.cpu.yml describes them, brings the file up and waits
for every health check, then talks to the gateway's published port with the official `openai` SDK. At the
end everything it made goes: containers, networks, the audit volume and the images.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import openai
import pytest
from packaging.utils import canonicalize_name

from scripts.containers import base_image, engine, images, wheel_mirror
from scripts.launcher import config, manifests
from scripts.launcher.commands import VLLM_SERVER_MODULE, bridge_env, classifier_env, gateway_env, model_server_env
from scripts.launcher.config import StackConfig
from services.contract.paths import REPO_ROOT
from services.contract.version import VERSION
from tests.conftest import SAMPLES
from tests.deploy.launch import native_vllm_args, without_deployment_specifics
from tests.dicom_files import from_jpeg
from tests.gateway.conftest import xray_message
from tests.waiting import wait_until

pytestmark = pytest.mark.containers

COMPOSE_FILE = REPO_ROOT / "deploy" / manifests.GENERATED_PROFILES["cpu"]
PROJECT = "cxr-serve-e2e"  # its own project: an operator's running stack is never touched
UP_TIMEOUT_S = 900  # both vLLM servers load and warm up on 2 cores
XRAY = "person1946_bacteria_4874.jpeg"


@dataclass
class ComposeStack:
    stack: StackConfig
    env: dict[str, str]
    url: str

    def compose(self, *args: str, timeout: float = 300) -> str:
        return images.compose(COMPOSE_FILE, PROJECT, *args, env=self.env, timeout=timeout)

    def container(self, service: str) -> dict:
        (container_id,) = self.compose("ps", "-q", service).split()
        (inspected,) = json.loads(engine.docker("inspect", container_id).stdout)
        return inspected

    def sdk(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="x", max_retries=0, timeout=300)


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture(scope="module")
def compose_stack() -> Iterator[ComposeStack]:
    stack = config.load("cpu", env={})
    port = stack.gateway.port
    assert _port_is_free(port), f"port {port} is taken: stop `make run` before the container test"
    with engine.running_engine():
        env = {**os.environ, "CXR_BASE_IMAGE": base_image.build(), "CXR_PUBLISH_ADDRESS": "127.0.0.1"}
        running = ComposeStack(stack, env, f"http://127.0.0.1:{port}")
        try:
            _build_images(env)
            _up(running)
            yield running
        finally:
            _keep_logs(running)
            running.compose("down", "--volumes", "--rmi", "all", "--remove-orphans", "--timeout", "30", timeout=600)
            engine.docker("image", "rm", "--force", base_image.TAG, check=False)
            engine.docker("image", "prune", "--force", check=False)


def _up(running: ComposeStack) -> None:
    """`compose up --wait`; when a service never gets healthy, the failure carries its logs' last lines."""
    try:
        running.compose("up", "--detach", "--no-build", "--wait", "--wait-timeout", str(UP_TIMEOUT_S), timeout=UP_TIMEOUT_S + 60)
    except RuntimeError as failed:
        last_lines = running.compose("logs", "--no-color", "--tail", "30")
        raise RuntimeError(f"{failed}\n--- the last lines each service logged ---\n{last_lines[-6000:]}") from None


def _build_images(env: dict[str, str]) -> None:
    """As an air-gapped site builds: the CPU torch from its own wheel mirror (here pip's local folder, served)."""
    wheels = wheel_mirror.local_wheel_folder()
    if wheels is None:  # no local wheels: PyTorch's index, as the compose file says by default
        images.build_all(COMPOSE_FILE, PROJECT, env)
        return
    with wheel_mirror.serving(wheels) as (index, host):
        mirrored = {**env, "CXR_TORCH_INDEX": index, "CXR_TRUSTED_HOST": host}
        images.build_all(COMPOSE_FILE, PROJECT, mirrored, network=wheel_mirror.BUILD_NETWORK)


def _keep_logs(running: ComposeStack) -> None:
    folder = REPO_ROOT / "logs" / "containers"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        (folder / "compose.log").write_text(running.compose("logs", "--no-color", "--timestamps"))
    except (RuntimeError, OSError) as failed:  # a stack that never came up has no logs to keep
        (folder / "compose.log").write_text(f"no logs: {failed}")


def _env(container: dict) -> dict[str, str]:
    return dict(entry.split("=", 1) for entry in container["Config"]["Env"])


def _deployment_free(env: dict[str, str]) -> dict[str, str]:
    """Without what differs by design between a host and a container: addresses, URLs and paths."""
    return {k: v for k, v in env.items() if not k.endswith(("_HOST", "_URL", "_PATH", "_DIR"))}


def _report(running: ComposeStack, sample_images: dict[str, bytes], **extra) -> dict:
    completion = running.sdk().chat.completions.create(model="cxr-report", messages=xray_message(sample_images[XRAY]), **extra)
    return completion.model_extra["cxr"]


def test_the_sdk_gets_a_report_plain_and_streamed(compose_stack, sample_images):
    cxr = _report(compose_stack, sample_images)
    assert cxr["status"] == "complete" and cxr["fracture"]["text"]
    assert cxr["classification"]["predicted_class"] in ("NORMAL", "PNEUMONIA")
    stream = compose_stack.sdk().chat.completions.create(
        model="cxr-report", messages=xray_message(sample_images[XRAY]), stream=True
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]


def test_both_pass_through_models_and_the_classifier_answer(compose_stack, sample_images):
    client = compose_stack.sdk()
    assert {"cxr-report", "chexfract", "report-llm", "pneumonia-classifier"} <= {m.id for m in client.models.list()}
    text = [{"role": "user", "content": "Say hello."}]
    assert client.chat.completions.create(model="report-llm", messages=text, max_tokens=8).choices[0].message.content
    fracture = client.chat.completions.create(model="chexfract", messages=xray_message(sample_images[XRAY]), max_tokens=8)
    assert fracture.choices[0].message.content
    classified = client.chat.completions.create(model="pneumonia-classifier", messages=xray_message(sample_images[XRAY]))
    assert "predicted_class" in classified.choices[0].message.content


def test_only_the_gateway_and_the_bridges_dimse_port_are_published_and_only_on_loopback(compose_stack):
    published = {
        entry["Service"]: [p for p in entry.get("Publishers") or [] if p.get("PublishedPort")]
        for entry in map(json.loads, compose_stack.compose("ps", "--format", "json").splitlines())
    }
    port = compose_stack.stack.gateway.port
    assert {service: [(p["URL"], p["PublishedPort"]) for p in ports] for service, ports in published.items() if ports} == {
        "gateway": [("127.0.0.1", port)],
        "bridge": [("127.0.0.1", compose_stack.stack.bridge.port)],
    }


def test_the_containers_launch_what_make_run_launches(compose_stack):
    stack = compose_stack.stack
    for role in ("report", "fracture"):
        container = compose_stack.container(manifests.SERVICE_NAMES[role])
        assert container["Config"]["Entrypoint"] == ["python3", "-m", VLLM_SERVER_MODULE]
        assert without_deployment_specifics(container["Config"]["Cmd"]) == without_deployment_specifics(
            native_vllm_args(stack, role)
        )
        env = _env(container)
        assert {key: env.get(key) for key in model_server_env(stack.roles[role])} == model_server_env(stack.roles[role])
    native = _deployment_free(classifier_env(stack.roles["classifier"]))
    assert {key: _env(compose_stack.container("classifier")).get(key) for key in native} == native
    native = _deployment_free(gateway_env(stack))
    assert {key: _env(compose_stack.container("gateway")).get(key) for key in native} == native
    native = _deployment_free(bridge_env(stack, gateway_url=""))
    assert {key: _env(compose_stack.container("bridge")).get(key) for key in native} == native


def test_no_container_runs_as_root(compose_stack):
    uid = str(compose_stack.stack.containers.user)
    for service in [*manifests.SERVICE_NAMES.values(), "gateway", "bridge"]:
        assert compose_stack.compose("exec", "-T", service, "id", "-u").strip() == uid, service


def test_each_image_carries_only_its_own_services_dependencies(compose_stack):
    """The worker's image cannot import the gateway's or the bridge's clients, nor the gateway's image an ML runtime,
    nor the bridge's image either of them."""
    probe = "import importlib.util as u, sys; sys.stdout.write(','.join(m for m in sys.argv[1:] if u.find_spec(m)))"
    gateway_only = ["openai", "httpx2", "fhir", "yaml", "gateway", "highdicom", "pynetdicom"]
    worker = compose_stack.compose("exec", "-T", "classifier", "python", "-c", probe, *gateway_only, "onnxruntime")
    assert worker.strip() == "onnxruntime"
    gateway = compose_stack.compose("exec", "-T", "gateway", "python", "-c", probe, "onnxruntime", "torch", "openai")
    assert gateway.strip() == "openai"
    others = ["onnxruntime", "torch", "vllm", "openai", "gateway"]
    bridge = compose_stack.compose("exec", "-T", "bridge", "python", "-c", probe, *others, "pynetdicom", "hl7apy", "hl7")
    assert bridge.strip() == "pynetdicom,hl7apy,hl7"


SBOM = "/usr/share/cxr-serve/sbom.cdx.json"  # deploy/image-install.sh
_DISTRIBUTIONS = (
    "import importlib.metadata as m, json, sys; "
    "json.dump([[d.metadata['Name'], d.version] for d in m.distributions()], sys.stdout)"
)


def test_each_image_carries_a_cyclonedx_sbom_of_exactly_what_it_installed(compose_stack):
    """Written at build time (deploy/image-install.sh): every distribution the running container has, at its version,
    and cxr-serve, at this version, as the root component; the tool that wrote it is not among them."""
    for service in [*manifests.SERVICE_NAMES.values(), "gateway", "bridge"]:
        installed = json.loads(compose_stack.compose("exec", "-T", service, "python", "-c", _DISTRIBUTIONS))
        sbom = json.loads(compose_stack.compose("exec", "-T", service, "cat", SBOM))
        assert (sbom["bomFormat"], sbom["specVersion"]) == ("CycloneDX", "1.6"), service
        root = sbom["metadata"]["component"]
        assert (root["name"], root["version"], root["type"]) == ("cxr-serve", VERSION, "application"), service
        listed = {(canonicalize_name(c["name"]), c["version"]) for c in sbom["components"]}
        assert {*listed, ("cxr-serve", VERSION)} == {(canonicalize_name(n), v) for n, v in installed}, service
        assert not {name for name, _ in listed if name.startswith("cyclonedx")}, service


def test_an_x_ray_sent_to_the_bridges_published_dimse_port_is_analysed_by_the_gateways_container(compose_stack, tmp_path):
    bridge = compose_stack.stack.bridge
    path = tmp_path / "dx.dcm"
    path.write_bytes(from_jpeg((SAMPLES / XRAY).read_bytes(), "mono2-8bit"))
    store = ["storescu", "-aec", bridge.ae_title, "127.0.0.1", str(bridge.port), str(path)]
    assert subprocess.run(store, capture_output=True, timeout=60).returncode == 0

    def analysed() -> bool:
        return "analysed   1" in compose_stack.compose("exec", "-T", "bridge", "python", "-m", "services.bridge", "status")

    wait_until(analysed, 600, "the X-ray analysed through the gateway's container")


def _ready(url: str) -> httpx.Response:
    return httpx.get(f"{url}/ready", timeout=30)


def test_a_stopped_chexfract_container_gives_partial_and_not_ready_then_complete_once_started(compose_stack, sample_images):
    service = manifests.SERVICE_NAMES["fracture"]
    compose_stack.compose("stop", service, timeout=120)
    try:
        cxr = _report(compose_stack, sample_images)
        assert cxr["status"] == "partial" and cxr["fracture"] is None
        assert [w["stage"] for w in cxr["warnings"]] == ["fracture"]
        not_ready = _ready(compose_stack.url)
        assert not_ready.status_code == 503 and not_ready.json()["backends"]["fracture"]["ready"] is False
    finally:
        compose_stack.compose("start", service, timeout=120)
    seconds = wait_until(lambda: _ready(compose_stack.url).status_code == 200, UP_TIMEOUT_S, "ChexFract's container back")
    print(f"ChexFract's container ready again after {seconds:.0f} s")
    assert _report(compose_stack, sample_images)["status"] == "complete"
