"""A multi-host topology without Docker: the gateway and each backend in its own network namespace.

Each backend runs with the same arguments `make run` gives it (vllm_server_args,
classifier_env), bound to its own address; the gateway is configured with
those addresses exactly as compose or Kubernetes would configure it with
service names (gateway_env's backend_host). Then one backend's link is cut
(`ip link set ... down`) and restored, proving the documented degraded mode
across a real network boundary. Needs root, `ip netns` and nft; fails naming the install command otherwise.

Every namespace also has a default route and an nftables rule that counts and drops each packet addressed
outside the stack, so that any connection attempt (a DNS lookup, vLLM's usage statistics, a hub download)
is seen rather than failing silently for want of a route.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from scripts.launcher import config
from scripts.launcher.commands import VLLM_SERVER_MODULE, classifier_env, gateway_env, vllm_server_args
from services.contract.paths import REPO_ROOT
from tests.conftest import SHORT_OUTPUTS, data_uri

SUFFIX = str(os.getpid() % 10000)
ROLES = {"classifier": 1, "report": 2, "fracture": 3}  # role -> subnet index
STACK_NET = "10.77.0.0/16"
EGRESS_TABLE = ("ip", "cxr_egress")


def _ip(*args: str, netns: str | None = None) -> None:
    prefix = ["ip", "netns", "exec", netns, "ip"] if netns else ["ip"]
    subprocess.run([*prefix, *args], check=True, capture_output=True)


def _nft(netns: str, *args: str) -> str:
    done = subprocess.run(["ip", "netns", "exec", netns, "nft", *args], check=True, capture_output=True, text=True)
    return done.stdout


def _watch_egress(netns: str, gateway: str) -> None:
    """A route out (so an attempt sends a packet) and a rule counting and dropping what leaves the stack."""
    _ip("route", "add", "default", "via", gateway, netns=netns)
    _nft(netns, "add", "table", *EGRESS_TABLE)
    _nft(netns, "add", "chain", *EGRESS_TABLE, "out", "{ type filter hook output priority 0; }")
    # Each destination is remembered (address . protocol . port), so that a failure says where it went.
    _nft(netns, "add", "set", *EGRESS_TABLE, "seen", "{ type ipv4_addr . inet_proto . inet_service; flags dynamic; }")
    outside = ["ip", "daddr", "!=", f"{{ {STACK_NET}, 127.0.0.0/8 }}"]
    _nft(netns, "add", "rule", *EGRESS_TABLE, "out", *outside, "update", "@seen", "{ ip daddr . meta l4proto . th dport }")
    _nft(netns, "add", "rule", *EGRESS_TABLE, "out", *outside, "counter", "drop")


def egress_packets(netns: str) -> int:
    """Packets the processes of `netns` addressed outside the stack since it was made."""
    return int(re.search(r"counter packets (\d+)", _nft(netns, "list", "table", *EGRESS_TABLE)).group(1))


def egress_destinations(netns: str) -> str:
    found = re.search(r"elements = \{([^}]*)\}", _nft(netns, "list", "set", *EGRESS_TABLE, "seen"))
    return " ".join(found.group(1).split()) if found else "none"


def _netns_available() -> bool:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    probe = f"cxrprobe{SUFFIX}"
    ok = subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode == 0
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return ok


pytestmark = pytest.mark.model_servers  # starts the whole stack itself, in network namespaces


@dataclass
class Host:
    netns: str
    address: str
    link: str  # this host's end of its veth pair
    peer: str  # the address at the other end: its route to everything


def _link(a_ns: str | None, a_addr: str, b_ns: str, b_addr: str, name: str) -> tuple[str, str]:
    """A veth pair between two namespaces (None: the root namespace), each end with its /30 address."""
    a, b = f"{name}a", f"{name}b"
    _ip("link", "add", a, "type", "veth", "peer", "name", b)
    _ip("link", "set", b, "netns", b_ns)
    if a_ns:
        _ip("link", "set", a, "netns", a_ns)
    for ns, dev, addr in ((a_ns, a, a_addr), (b_ns, b, b_addr)):
        _ip("addr", "add", f"{addr}/30", "dev", dev, netns=ns)
        _ip("link", "set", dev, "up", netns=ns)
    return a, b


def _wait(url: str, timeout_s: float, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"process for {url} exited"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError(url)


@pytest.fixture(scope="module")
def topology(tmp_path_factory) -> Iterator[dict]:
    assert _netns_available(), "needs root and network namespaces: as root, `apt-get install -y iproute2 nftables`"
    stack_config = config.load("cpu", env={})
    gw = f"cxrgw{SUFFIX}"
    namespaces = [gw] + [f"cxr{role[:3]}{SUFFIX}" for role in ROLES]
    processes: list[subprocess.Popen] = []
    logs = tmp_path_factory.mktemp("topology")
    try:
        for ns in namespaces:
            subprocess.run(["ip", "netns", "add", ns], check=True)
            _ip("link", "set", "lo", "up", netns=ns)
        _link(None, "10.77.0.1", gw, "10.77.0.2", f"c{SUFFIX}r")  # the test (root) -> gateway
        hosts = {}
        for (role, index), ns in zip(ROLES.items(), namespaces[1:], strict=True):
            _, backend_end = _link(gw, f"10.77.{index}.1", ns, f"10.77.{index}.2", f"c{SUFFIX}{index}")
            hosts[role] = Host(ns, f"10.77.{index}.2", backend_end, f"10.77.{index}.1")
            _watch_egress(ns, hosts[role].peer)
        _watch_egress(gw, "10.77.0.1")

        def spawn(ns: str, argv: list[str], env: dict[str, str], name: str) -> subprocess.Popen:
            log = (logs / f"{name}.log").open("wb")
            process = subprocess.Popen(
                ["ip", "netns", "exec", ns, *argv], env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT
            )
            processes.append(process)
            return process

        roles = stack_config.roles
        waits = []
        for role in ("report", "fracture"):
            args = vllm_server_args(roles[role], host=hosts[role].address)
            process = spawn(hosts[role].netns, [sys.executable, "-m", VLLM_SERVER_MODULE, *args], roles[role].env, role)
            waits.append((hosts[role], roles[role].port, "/health", process))
        env = classifier_env(roles["classifier"], host=hosts["classifier"].address)
        process = spawn(hosts["classifier"].netns, [sys.executable, "-m", "services.classifier"], env, "classifier")
        waits.append((hosts["classifier"], roles["classifier"].port, "/v2/health/ready", process))
        for host, port, path, process in waits:
            _wait_in(host.netns, f"http://{host.address}:{port}{path}", 900, process)
        gateway = {
            **gateway_env(stack_config, host="10.77.0.2", backend_host=lambda r: hosts[r].address),
            **SHORT_OUTPUTS,
            # A cut link drops packets silently; bound the wait as an operator would for this topology.
            "GATEWAY_FRACTURE_TIMEOUT_S": "20",
        }
        process = spawn(gw, [sys.executable, "-m", "gateway", "serve"], gateway, "gateway")
        url = f"http://10.77.0.2:{stack_config.gateway.port}"
        _wait(f"{url}/ready", 120, process)
        yield {"url": url, "hosts": hosts, "namespaces": namespaces}
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        for ns in namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)  # also removes its veth ends


def _wait_in(netns: str, url: str, timeout_s: float, process: subprocess.Popen) -> None:
    """Poll a backend from inside its own namespace (the root namespace has no route to it)."""
    probe = f"import urllib.request; urllib.request.urlopen('{url}', timeout=2)"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"backend for {url} exited"
        if subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", probe], capture_output=True).returncode == 0:
            return
        time.sleep(2)
    raise TimeoutError(url)


def _pipeline(url: str, image: bytes) -> dict:
    body = {
        "model": "cxr-report",
        "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_uri(image)}}]}],
    }
    response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=300)
    assert response.status_code == 200, response.text
    return response.json()["cxr"]


def test_pipeline_across_hosts_then_a_cut_link_then_recovery(topology, sample_images):
    image = sample_images["person1946_bacteria_4874.jpeg"]
    url, fracture = topology["url"], topology["hosts"]["fracture"]
    assert _pipeline(url, image)["status"] == "complete"

    _ip("link", "set", fracture.link, "down", netns=fracture.netns)
    try:
        cxr = _pipeline(url, image)
        assert cxr["status"] == "partial" and cxr["fracture"] is None
        assert [w["stage"] for w in cxr["warnings"]] == ["fracture"]
        ready = httpx.get(f"{url}/ready", timeout=30)
        assert ready.status_code == 503 and ready.json()["backends"]["fracture"]["ready"] is False
    finally:
        _ip("link", "set", fracture.link, "up", netns=fracture.netns)
        _ip("route", "replace", "default", "via", fracture.peer, netns=fracture.netns)  # went with the link
    deadline = time.monotonic() + 60
    while httpx.get(f"{url}/ready", timeout=30).status_code != 200 and time.monotonic() < deadline:
        time.sleep(1)
    assert _pipeline(url, image)["status"] == "complete"


def test_no_process_of_the_stack_tried_to_reach_anything_outside_it(topology):
    """From the first process start through the pipeline, the cut and the recovery above: not one packet out."""
    attempts = {ns: egress_packets(ns) for ns in topology["namespaces"]}
    where = {ns: egress_destinations(ns) for ns, packets in attempts.items() if packets}
    assert attempts == dict.fromkeys(topology["namespaces"], 0), f"packets addressed outside the stack: {where}"
    # The rule sees an attempt: a connection to a documentation address (RFC 5737) from the ChexFract host.
    fracture = topology["hosts"]["fracture"].netns
    attempt = "import socket\ntry: socket.create_connection(('192.0.2.1', 443), timeout=2)\nexcept OSError: pass"
    subprocess.run(["ip", "netns", "exec", fracture, sys.executable, "-c", attempt], check=True)
    assert egress_packets(fracture) >= 1
