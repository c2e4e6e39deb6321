"""The Kubernetes bases and the site overlay as `kubectl kustomize` renders them: valid against the Kubernetes
schemas, every pod within the restricted Pod Security Standard, GPU pods scheduled and rolled as one GPU allows,
vLLM's liveness a real generation, and the site's values (deploy/k8s/site) in every object they concern."""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from scripts.launcher import config, manifests
from services.contract.paths import REPO_ROOT
from tests.deploy.test_generated import KUBERNETES_VERSION

K8S = REPO_ROOT / "deploy" / "k8s"
FOLDERS = ["cpu", "gpu", "site"]
SITE_NAMESPACE = "radiology-ai"  # deploy/k8s/site/kustomization.yaml's values, as an operator would read them
SITE_HOST = "cxr.radiology.hospital.example"
SITE_REGISTRY = "registry.hospital.example/"


def kustomize(folder: Path) -> tuple[dict, ...]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl (with its kustomize) is not installed: these tests render the manifests with it")
    out = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return tuple(doc for doc in yaml.safe_load_all(out.stdout) if doc)


@cache
def rendered(folder: str) -> tuple[dict, ...]:
    return kustomize(K8S / folder)


def of_kind(folder: str, kind: str) -> list[dict]:
    return [doc for doc in rendered(folder) if doc["kind"] == kind]


def pods(folder: str) -> list[tuple[str, dict]]:
    return [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in of_kind(folder, "Deployment")]


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_rendered_object_validates_against_the_kubernetes_schemas(folder):
    documents = rendered(folder)
    assert {doc["kind"] for doc in documents} >= {"Namespace", "Deployment", "Service", "Ingress", "NetworkPolicy"}
    for doc in documents:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


# The restricted profile (kubernetes.io/docs/concepts/security/pod-security-standards), as its admission checks it.
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}


def restricted_violations(pod: dict) -> list[str]:
    found = [key for key in ("hostNetwork", "hostPID", "hostIPC") if pod.get(key)]
    pod_security = pod.get("securityContext", {})
    found += [f"volume {v['name']}" for v in pod.get("volumes", []) if not set(v) - {"name"} <= RESTRICTED_VOLUMES]
    for container in pod["containers"] + pod.get("initContainers", []):
        security = container.get("securityContext", {})
        name = container["name"]
        if security.get("privileged") or security.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: privilege escalation")
        if not security.get("runAsNonRoot", pod_security.get("runAsNonRoot")):
            found.append(f"{name}: may run as root")
        if security.get("runAsUser", pod_security.get("runAsUser")) == 0:
            found.append(f"{name}: uid 0")
        seccomp = security.get("seccompProfile", pod_security.get("seccompProfile", {})).get("type")
        if seccomp not in {"RuntimeDefault", "Localhost"}:
            found.append(f"{name}: seccomp {seccomp}")
        capabilities = security.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []) or set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            found.append(f"{name}: capabilities {capabilities}")
        if any("hostPort" in port for port in container.get("ports", [])):
            found.append(f"{name}: hostPort")
    return found


def test_the_restricted_check_catches_what_the_profile_forbids():
    (name, pod), *_ = pods("gpu")
    assert restricted_violations(pod) == []
    container = pod["containers"][0]
    loose = {
        **pod,
        "hostNetwork": True,
        "volumes": [*pod["volumes"], {"name": "host", "hostPath": {"path": "/"}}],
        "containers": [{**container, "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}],
    }
    assert set(restricted_violations(loose)) == {
        "hostNetwork",
        "volume host",
        f"{container['name']}: privilege escalation",
        f"{container['name']}: capabilities {{'add': ['SYS_ADMIN']}}",
    }, name


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_pod_meets_the_restricted_pod_security_standard_which_the_namespace_enforces(folder):
    (namespace,) = of_kind(folder, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for name, pod in pods(folder):
        assert restricted_violations(pod) == [], name
        (container,) = pod["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"], name  # the one writable place besides volumes


@pytest.mark.parametrize("folder", FOLDERS)
def test_pods_with_a_gpu_of_their_own_never_surge_and_are_scheduled_on_gpu_nodes(folder):
    with_gpu = 0
    for deployment in of_kind(folder, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        if "nvidia.com/gpu" in pod["containers"][0]["resources"].get("limits", {}):
            with_gpu += 1
            assert deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0
            assert pod["runtimeClassName"] == "nvidia" and pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
            assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
        else:
            assert "runtimeClassName" not in pod and "tolerations" not in pod, deployment["metadata"]["name"]
    assert with_gpu == (0 if folder == "cpu" else 3)  # both vLLM servers and the classifier


@pytest.mark.parametrize("folder", FOLDERS)
def test_vllm_liveness_is_one_generated_token_and_load_time_is_the_startup_probes(folder):
    profile = "cpu" if folder == "cpu" else "gpu"
    stack = config.load(profile, env={})
    for role in ("report", "fracture"):
        (deployment,) = [d for d in of_kind(folder, "Deployment") if d["metadata"]["name"] == manifests.SERVICE_NAMES[role]]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        cfg = stack.roles[role]
        deadline = manifests.LIVENESS_DEADLINE_S[profile]
        liveness = container["livenessProbe"]
        assert liveness["exec"]["command"] == manifests.generation_check(cfg.port, cfg.served_name, deadline)
        assert liveness["timeoutSeconds"] > deadline and "initialDelaySeconds" not in liveness
        startup = container["startupProbe"]
        assert startup["httpGet"]["path"] == "/health"
        assert startup["periodSeconds"] * startup["failureThreshold"] == manifests.STARTUP_BUDGET_S[profile]


def test_the_site_overlay_puts_the_sites_values_in_every_object_they_concern():
    documents = rendered("site")
    (namespace,) = of_kind("site", "Namespace")
    assert namespace["metadata"]["name"] == SITE_NAMESPACE
    assert {doc["metadata"].get("namespace") for doc in documents if doc["kind"] != "Namespace"} == {SITE_NAMESPACE}
    (ingress,) = of_kind("site", "Ingress")
    assert ingress["spec"]["rules"][0]["host"] == SITE_HOST
    assert ingress["spec"]["tls"] == [{"hosts": [SITE_HOST], "secretName": "cxr-gateway-tls-site"}]
    images = [c["image"] for _, pod in pods("site") for c in pod["containers"]]
    assert images and all(image.startswith(SITE_REGISTRY) for image in images), images  # no public registry
    assert all(claim["spec"]["storageClassName"] == "site-shared" for claim in of_kind("site", "PersistentVolumeClaim"))
    (hpa,) = [h for h in of_kind("site", "HorizontalPodAutoscaler") if h["metadata"]["name"] == "gateway"]
    (gateway,) = [d for d in of_kind("site", "Deployment") if d["metadata"]["name"] == "gateway"]
    assert gateway["spec"]["replicas"] == hpa["spec"]["minReplicas"] == 3
    # What the overlay leaves alone is the base's: the same objects, by kind and name.
    assert sorted((d["kind"], d["metadata"]["name"]) for d in of_kind("gpu", "Deployment")) == sorted(
        (d["kind"], d["metadata"]["name"]) for d in of_kind("site", "Deployment")
    )


def test_the_monitoring_component_scrapes_every_component_and_carries_the_alert_rules(tmp_path):
    # The site overlay with its commented `components:` lines taken in, as an operator with the Prometheus Operator
    # does (paths relative to the copy: kustomize takes no absolute one).
    overlay = yaml.safe_load((K8S / "site" / "kustomization.yaml").read_text())
    overlay["resources"] = [os.path.relpath(K8S / "gpu", tmp_path)]
    overlay["components"] = [os.path.relpath(K8S / manifests.K8S_MONITORING, tmp_path)]
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(overlay))
    documents = kustomize(tmp_path)
    (monitor,) = [d for d in documents if d["kind"] == "ServiceMonitor"]
    (rule,) = [d for d in documents if d["kind"] == "PrometheusRule"]
    assert monitor["metadata"]["namespace"] == rule["metadata"]["namespace"] == SITE_NAMESPACE
    (endpoint,) = monitor["spec"]["endpoints"]
    wanted = monitor["spec"]["selector"]["matchLabels"]
    scraped = {
        svc["metadata"]["name"]
        for svc in documents
        if svc["kind"] == "Service"
        and wanted.items() <= svc["metadata"].get("labels", {}).items()
        and endpoint["port"] in {port.get("name") for port in svc["spec"]["ports"]}
    }
    # Every component's /metrics, each a job named as compose names it, so the rules' `up{job=...}` hold in both.
    assert scraped == set(manifests.scrape_targets(config.load("gpu", env={})))
    assert endpoint["path"] == "/metrics"
    alerts = yaml.safe_load((REPO_ROOT / "deploy" / manifests.ALERTS_FILE).read_text())  # promtool checks this file
    assert rule["spec"] == alerts
    # The rest is the site overlay's, unchanged.
    assert [d for d in documents if d["kind"] not in ("ServiceMonitor", "PrometheusRule")] == list(rendered("site"))
