"""The compose files and manifests are current, valid against their official schemas, and launch what `make run` does."""

import json
import re
import tomllib
from importlib import resources
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from scripts import lock
from scripts.launcher import config, manifests
from scripts.launcher.commands import NO_EGRESS_ENV, classifier_env, gateway_env, service_commands
from services.contract.paths import REPO_ROOT
from tests.deploy.launch import native_vllm_args, without_deployment_specifics

DEPLOY = REPO_ROOT / "deploy"
KUBERNETES_VERSION = "1.30.0"


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_committed_files_equal_what_models_yaml_generates():
    stale = manifests.stale_files()
    assert not stale, f"run `make deploy-files`: {[str(p.relative_to(REPO_ROOT)) for p in stale]}"


@pytest.fixture(scope="module")
def compose_schema():
    schema_file = resources.files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json"
    return json.loads(schema_file.read_text())


@pytest.mark.parametrize("file_name", sorted(manifests.GENERATED_PROFILES.values()))
def test_compose_file_validates_against_the_compose_specification(compose_schema, file_name):
    compose = yaml.safe_load((DEPLOY / file_name).read_text())
    jsonschema.validators.validator_for(compose_schema)(compose_schema).validate(compose)
    published = {name: svc.get("ports") for name, svc in compose["services"].items() if svc.get("ports")}
    # only the gateway and the bridge's DIMSE port (for the modalities and the PACS) are reachable from outside,
    # and Prometheus (the monitoring profile) from the server itself
    stack = config.load("gpu" if file_name == "docker-compose.yml" else "cpu", env={})
    assert published == {
        "gateway": [f"{manifests.COMPOSE_PUBLISH_ADDRESS}:{stack.gateway.port}:{stack.gateway.port}"],
        "bridge": [f"{manifests.COMPOSE_PUBLISH_ADDRESS}:{stack.bridge.port}:{stack.bridge.port}"],
        "prometheus": ["127.0.0.1:9090:9090"],  # loopback only, whatever the gateway's address
    }
    assert "prometheus:/prometheus" in compose["services"]["prometheus"]["volumes"]
    assert compose["services"]["bridge"]["volumes"] == [f"bridge:{manifests.BRIDGE_STATE_MOUNT}"]  # state outlives it
    assert all(dep["condition"] == "service_healthy" for dep in compose["services"]["gateway"]["depends_on"].values())


def test_a_broken_compose_file_is_caught(compose_schema):
    broken = {"services": {"gateway": {"image": "x", "ports": "8080:8080", "depends_on": {"a": {"condition": "maybe"}}}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validators.validator_for(compose_schema)(compose_schema).validate(broken)


# Every object of the Kubernetes API itself; deploy/k8s/monitoring holds the Prometheus Operator's kinds, whose schemas
# come with its CRDs, not with Kubernetes: tests/deploy/test_kustomize.py checks them as rendered, promtool their rules.
K8S_FILES = sorted(
    p for p in (DEPLOY / "k8s").rglob("*.yaml") if p.name != "kustomization.yaml" and p.parent.name != manifests.K8S_MONITORING
)


@pytest.mark.parametrize("path", K8S_FILES, ids=[str(p.relative_to(DEPLOY)) for p in K8S_FILES])
def test_kubernetes_manifests_validate_offline(path):
    for doc in documents(path):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_a_broken_manifest_is_caught():
    deployment = documents(DEPLOY / "k8s" / "gpu" / "gateway.yaml")[0]
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("profile", sorted(manifests.GENERATED_PROFILES))
def test_kustomization_lists_every_manifest(profile):
    folder = DEPLOY / "k8s" / profile
    (kustomization,) = documents(folder / "kustomization.yaml")
    assert sorted(kustomization["resources"]) == sorted(p.name for p in folder.glob("*.yaml") if p.name != "kustomization.yaml")


def _with_own_gpu_fraction(args: list[str]) -> list[str]:
    """Kubernetes gives each vLLM pod a GPU of its own: only the memory fraction may differ from compose's."""
    if "--gpu-memory-utilization" not in args:
        return args
    at = args.index("--gpu-memory-utilization") + 1
    return [*args[:at], manifests.K8S_GPU_MEMORY_UTILIZATION, *args[at + 1 :]]


@pytest.mark.parametrize("profile", sorted(manifests.GENERATED_PROFILES))
def test_compose_and_kubernetes_launch_what_make_run_launches(profile):
    stack = config.load(profile, env={})
    compose = yaml.safe_load((DEPLOY / manifests.GENERATED_PROFILES[profile]).read_text())
    for role in ("report", "fracture"):
        service = manifests.SERVICE_NAMES[role]
        native = native_vllm_args(stack, role)
        in_compose = compose["services"][service]["command"]
        (deployment,) = [d for d in documents(DEPLOY / "k8s" / profile / f"{service}.yaml") if d["kind"] == "Deployment"]
        in_k8s = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        assert _with_own_gpu_fraction(in_compose) == in_k8s
        assert without_deployment_specifics(in_compose) == without_deployment_specifics(native)
        model = stack.roles[role].model
        assert in_compose[in_compose.index("--model") + 1].endswith(model.removeprefix("./"))
    native_classifier = classifier_env(stack.roles["classifier"])
    compose_classifier = compose["services"]["classifier"]["environment"]
    assert {k: v for k, v in compose_classifier.items() if "PATH" not in k and "HOST" not in k} == {
        k: v for k, v in native_classifier.items() if "PATH" not in k and "HOST" not in k
    }
    native_gateway = gateway_env(stack)
    assert {k: v for k, v in compose["services"]["gateway"]["environment"].items() if k.endswith("_MODEL")} == {
        k: v for k, v in native_gateway.items() if k.endswith("_MODEL")
    }


@pytest.mark.parametrize("profile", sorted(manifests.GENERATED_PROFILES))
def test_no_model_server_may_call_out_in_any_deployment(profile):
    """vLLM's usage statistics and the hub's update checks are off natively, in compose and on Kubernetes."""
    stack = config.load(profile, env={})
    compose = yaml.safe_load((DEPLOY / manifests.GENERATED_PROFILES[profile]).read_text())
    native = {command.name: command.env for command in service_commands(stack, environ={})}
    for role, service in manifests.SERVICE_NAMES.items():
        (deployment,) = [d for d in documents(DEPLOY / "k8s" / profile / f"{service}.yaml") if d["kind"] == "Deployment"]
        in_k8s = {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        native_env = native["classifier" if role == "classifier" else f"vllm-{role}"]
        for env in (native_env, compose["services"][service]["environment"], in_k8s):
            assert {key: env.get(key) for key in NO_EGRESS_ENV} == NO_EGRESS_ENV, (profile, service)


# Each Dockerfile's image installs with deploy/image-install.sh from deploy/requirements/<image>.txt (scripts/lock.py).
INSTALL = re.compile(r'^RUN sh /tmp/install/image-install\.sh /tmp/install "?([\w$-]+)"?', re.MULTILINE)


def _installed_images(dockerfile: Path) -> list[str]:
    """The requirement files a Dockerfile installs: classifier-$RUNTIME stands for both runtimes."""
    (image,) = INSTALL.findall(dockerfile.read_text())
    return [image.replace("$RUNTIME", runtime) for runtime in ("cpu", "gpu")] if "$RUNTIME" in image else [image]


def test_dockerfiles_install_their_hashed_requirements_with_the_install_script():
    for dockerfile in DEPLOY.glob("*.Dockerfile"):
        text = dockerfile.read_text()
        assert re.findall(r"^FROM .*", text, re.MULTILINE) == ["FROM ${BASE_IMAGE}"], f"{dockerfile.name}: base from models.yaml"
        assert re.search(r"^USER \$\{UID\}$", text, re.MULTILINE), f"{dockerfile.name} must run as the non-root UID"
        assert "pip install" not in text, f"{dockerfile.name}: packages come only from its hashed requirements file"
        (named,) = INSTALL.findall(text)
        requirements = f"deploy/requirements/{named.replace('$RUNTIME', '${RUNTIME}')}.txt"
        assert f"COPY deploy/image-install.sh {requirements} deploy/requirements/sbom.txt /tmp/install/" in text, dockerfile.name
        assert all(image in lock.IMAGES and lock.requirements_path(image).exists() for image in _installed_images(dockerfile))
    script = (DEPLOY / "image-install.sh").read_text()
    assert 'pip install --require-hashes --no-deps -r "$requirements/$image.txt"' in script
    assert "pip install --no-deps --no-build-isolation ." in script and "pip check" in script  # the project itself


def test_each_service_image_installs_only_its_own_extra():
    """What each extra holds is checked by tests/test_architecture.py; here, that the images install just that."""
    dockerfiles = ("gateway", "classifier", "bridge", "vllm-cpu")
    installs = {name: _installed_images(DEPLOY / f"{name}.Dockerfile") for name in dockerfiles}
    assert installs == {
        "gateway": ["gateway"],
        "classifier": ["classifier-cpu", "classifier-gpu"],
        "bridge": ["bridge"],
        "vllm-cpu": ["vllm-cpu"],
    }
    extras = {image: lock.IMAGES[image][0] for names in installs.values() for image in names}
    assert extras == {
        "gateway": "gateway",
        "classifier-cpu": "classifier",
        "classifier-gpu": "classifier-gpu",
        "bridge": "bridge",
        "vllm-cpu": "cpu",
    }
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert not [req for req in project["dependencies"] if req.startswith("onnxruntime")]


def _of_kind(profile: str, file_name: str, kind: str) -> list[dict]:
    return [doc for doc in documents(DEPLOY / "k8s" / profile / file_name) if doc["kind"] == kind]


@pytest.mark.parametrize("profile", sorted(manifests.GENERATED_PROFILES))
def test_three_gateways_behind_an_ingress_that_terminates_tls(profile):
    (deployment,) = _of_kind(profile, "gateway.yaml", "Deployment")
    (autoscaler,) = _of_kind(profile, "gateway.yaml", "HorizontalPodAutoscaler")
    assert deployment["spec"]["replicas"] == 3 and autoscaler["spec"]["minReplicas"] == 3
    (ingress,) = _of_kind(profile, "gateway.yaml", "Ingress")
    (tls,) = ingress["spec"]["tls"]
    (rule,) = ingress["spec"]["rules"]
    assert tls["secretName"] and tls["hosts"] == [rule["host"]]
    (service,) = _of_kind(profile, "gateway.yaml", "Service")
    paths = rule["http"]["paths"]
    for path in paths:
        assert path["backend"]["service"] == {
            "name": service["metadata"]["name"],
            "port": {"number": service["spec"]["ports"][0]["port"]},
        }
    # Only what clients call: never /, /metrics, /docs, /openapi.json or /admin from the hospital network.
    assert {p["path"]: p["pathType"] for p in paths} == {"/v1": "Prefix", "/ui": "Prefix", "/health": "Exact"}
    for internal in ("/metrics", "/docs", "/openapi.json", "/admin/audit/events", "/ready"):
        assert not any(internal == p["path"] or internal.startswith(p["path"] + "/") for p in paths), internal


@pytest.mark.parametrize("profile", sorted(manifests.GENERATED_PROFILES))
def test_model_servers_may_open_no_connection_and_the_gateway_only_to_them(profile):
    policies = {doc["metadata"]["name"]: doc["spec"] for doc in _of_kind(profile, "networkpolicy.yaml", "NetworkPolicy")}
    backends = policies["cxr-backends-no-egress"]
    assert backends["policyTypes"] == ["Egress"] and backends["egress"] == []  # deny all
    (selector,) = backends["podSelector"]["matchExpressions"]
    assert set(selector["values"]) == set(manifests.SERVICE_NAMES.values())
    gateway = policies["cxr-gateway-egress-to-backends-only"]
    to_backends, dns, audit_repository, to_review = gateway["egress"]
    assert [peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for peer in to_review["to"]] == ["bridge"]
    assert to_review["ports"] == [{"port": config.load(profile, env={}).bridge.http_port}]  # the review API only
    assert "to" not in audit_repository and audit_repository["ports"] == [{"port": 6514, "protocol": "TCP"}]
    stack = config.load(profile, env={})
    assert {peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for peer in to_backends["to"]} == set(
        manifests.SERVICE_NAMES.values()
    )
    assert sorted(port["port"] for port in to_backends["ports"]) == sorted(cfg.port for cfg in stack.roles.values())
    assert "to" not in dns and {port["port"] for port in dns["ports"]} == {53}


@pytest.mark.parametrize("profile", sorted(manifests.GENERATED_PROFILES))
def test_only_the_ingress_controller_the_bridge_and_monitoring_reach_the_gateway(profile):
    policies = {doc["metadata"]["name"]: doc["spec"] for doc in _of_kind(profile, "networkpolicy.yaml", "NetworkPolicy")}
    (rule,) = policies["cxr-gateway-from-ingress-bridge-monitoring"]["ingress"]
    namespaces = {
        p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for p in rule["from"] if "namespaceSelector" in p
    }
    pods = {p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in rule["from"] if "podSelector" in p}
    assert namespaces == {"ingress-nginx", "monitoring"} and pods == {"bridge"}
    assert rule["ports"] == [{"port": config.load(profile, env={}).gateway.port}]


def test_gpu_compose_shares_one_gpu_and_kubernetes_gives_each_vllm_pod_its_own():
    stack = config.load("gpu", env={})
    compose = yaml.safe_load((DEPLOY / manifests.GENERATED_PROFILES["gpu"]).read_text())
    devices = [
        service["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"]
        for name, service in compose["services"].items()
        if name in manifests.SERVICE_NAMES.values()
    ]
    assert len(devices) == 3 and all(ids == devices[0] for ids in devices) and len(devices[0]) == 1
    shared = sum(float(stack.roles[role].args["gpu-memory-utilization"]) for role in ("report", "fracture"))
    assert shared <= 0.9, "both vLLM servers and the classifier's CUDA context must fit on the one GPU"
    for role in ("report", "fracture"):
        (deployment,) = _of_kind("gpu", f"{manifests.SERVICE_NAMES[role]}.yaml", "Deployment")
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
        args = container["args"]
        assert float(args[args.index("--gpu-memory-utilization") + 1]) >= 0.85


@pytest.mark.parametrize("profile", sorted(manifests.GENERATED_PROFILES))
def test_one_bridge_on_its_own_volume_with_dimse_as_a_service(profile):
    stack = config.load(profile, env={})
    (deployment,) = _of_kind(profile, "bridge.yaml", "Deployment")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}  # one owner
    pod = deployment["spec"]["template"]["spec"]
    (claim,) = [volume["persistentVolumeClaim"]["claimName"] for volume in pod["volumes"] if "persistentVolumeClaim" in volume]
    assert claim in {doc["metadata"]["name"] for doc in _of_kind(profile, "storage.yaml", "PersistentVolumeClaim")}
    (container,) = pod["containers"]
    assert container["volumeMounts"] == [{"name": "state", "mountPath": manifests.BRIDGE_STATE_MOUNT}, manifests.TMP_MOUNT]
    services = {doc["metadata"]["name"]: doc["spec"] for doc in _of_kind(profile, "bridge.yaml", "Service")}
    assert (
        services["bridge-dicom"]["ports"][0]["port"] == stack.bridge.port and services["bridge-dicom"]["type"] == "LoadBalancer"
    )
    assert services["bridge"]["ports"][0]["port"] == stack.bridge.http_port  # /metrics, inside the cluster
    (configmap,) = _of_kind(profile, "configmap-bridge.yaml", "ConfigMap")
    assert configmap["data"]["CXR_BRIDGE_STATE_DIR"] == manifests.BRIDGE_STATE_MOUNT
    assert configmap["data"]["CXR_BRIDGE_GATEWAY_URL"] == f"http://gateway:{stack.gateway.port}"


@pytest.mark.parametrize("profile", sorted(manifests.GENERATED_PROFILES))
def test_every_container_runs_as_the_non_root_user(profile):
    uid = config.load(profile, env={}).containers.user
    assert uid != 0
    compose = yaml.safe_load((DEPLOY / manifests.GENERATED_PROFILES[profile]).read_text())
    for name in [*manifests.SERVICE_NAMES.values(), "gateway", "bridge"]:
        assert compose["services"][name]["user"] == f"{uid}:{uid}", name
        (deployment,) = _of_kind(profile, f"{name}.yaml", "Deployment")
        security = deployment["spec"]["template"]["spec"]["securityContext"]
        assert security["runAsNonRoot"] and security["runAsUser"] == uid, name


@pytest.mark.parametrize("profile", sorted(manifests.GENERATED_PROFILES))
def test_the_gateway_runs_with_two_malloc_arenas_everywhere(profile):
    """Natively, in compose and on Kubernetes (its memory stays flat under a soak: commands.GATEWAY_PROCESS_ENV)."""
    stack = config.load(profile, env={})
    compose = yaml.safe_load((DEPLOY / manifests.GENERATED_PROFILES[profile]).read_text())
    (configmap,) = _of_kind(profile, "configmap-gateway.yaml", "ConfigMap")
    native = next(c for c in service_commands(stack, environ={}) if c.name == "gateway").env
    for env in (native, compose["services"]["gateway"]["environment"], configmap["data"]):
        assert env["MALLOC_ARENA_MAX"] == "2"
