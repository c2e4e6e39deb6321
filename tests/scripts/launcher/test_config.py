"""deploy/models.yaml resolution: profiles, inheritance, environment overrides, argument rendering."""

import pytest

from scripts.launcher import config
from scripts.launcher.commands import service_commands, vllm_server_args
from services.contract.roles import Role


def test_cpu_profile_has_every_role_on_the_documented_ports():
    stack = config.load("cpu", env={})
    assert {role: stack.roles[role].port for role in Role} == {"report": 8101, "fracture": 8102, "classifier": 8001}
    assert stack.gateway.port == 8080
    assert stack.roles["fracture"].served_name == "chexfract"


def test_cpu_vllm_servers_are_pinned_to_different_cores():
    stack = config.load("cpu", env={})
    binds = {stack.roles[role].env["VLLM_CPU_OMP_THREADS_BIND"] for role in ("report", "fracture")}
    assert binds == {"0", "1"}


def test_child_profile_replaces_single_flags_and_keeps_the_rest():
    parent = config.load("gpu", env={})
    child = config.load("gpu-24gb", env={})
    assert child.roles["report"].args["quantization"] == "awq_marlin"
    assert child.roles["report"].args["enable-prefix-caching"] is True  # inherited
    assert child.roles["fracture"].args["trust-remote-code"] is True
    assert parent.roles["report"].args.get("quantization") is None


def test_environment_overrides_ports_and_models():
    stack = config.load("cpu", env={"CXR_REPORT_PORT": "9999", "CXR_FRACTURE_MODEL": "/weights/chexfract"})
    assert stack.roles["report"].port == 9999
    assert stack.roles["fracture"].model_location() == "/weights/chexfract"
    assert stack.url("report") == "http://127.0.0.1:9999"


def test_unknown_profile_is_a_clear_error():
    with pytest.raises(config.ConfigError, match="unknown profile 'nope'"):
        config.load("nope", env={})


def test_cli_args_render_flags_booleans_and_json():
    args = vllm_server_args(config.load("cpu", env={}).roles["fracture"])
    assert args[args.index("--limit-mm-per-prompt") + 1] == '{"image": 1}'
    assert "--enforce-eager" in args
    assert args[args.index("--dtype") + 1] == "float32"
    assert args[args.index("--served-model-name") + 1] == "chexfract"


def test_gateway_is_told_every_backend_url_derived_from_the_same_ports():
    stack = config.load("cpu", env={"CXR_CLASSIFIER_PORT": "9001"})
    gateway = next(c for c in service_commands(stack) if c.name == "gateway")
    assert gateway.env["GATEWAY_CLASSIFIER_URL"] == "http://127.0.0.1:9001"
    assert gateway.env["GATEWAY_FRACTURE_MODEL"] == "chexfract"
    assert [c.name for c in service_commands(stack)][-2:] == ["gateway", "bridge"]  # after the backends, in order


def test_the_operators_gateway_variables_win_over_models_yaml():
    stack = config.load("cpu", env={})
    derived = next(c for c in service_commands(stack, environ={}) if c.name == "gateway")
    assert derived.env["GATEWAY_HOST"] == "127.0.0.1" and derived.env["GATEWAY_REPORT_TEMPERATURE"] == "0.0"
    assert derived.env["GATEWAY_FRACTURE_TOP_P"] == "0.9" and derived.env["GATEWAY_REPORT_MAX_TOKENS_LIMIT"] == "2048"
    operator = {"GATEWAY_HOST": "0.0.0.0", "GATEWAY_PORT": "9443", "GATEWAY_REPORT_URL": "http://10.1.2.3:11434/v1"}
    gateway = next(c for c in service_commands(stack, environ={**operator, "UNRELATED": "x"}) if c.name == "gateway")
    assert {key: gateway.env[key] for key in operator} == operator
    assert gateway.port == 9443 and "UNRELATED" not in gateway.env


def test_the_bridge_is_told_its_ports_and_the_gateways_url_and_the_operator_wins():
    stack = config.load("cpu", env={"CXR_BRIDGE_PORT": "11999", "CXR_GATEWAY_PORT": "9080"})
    commands = {c.name: c for c in service_commands(stack, environ={"CXR_BRIDGE_ALLOWED_CALLERS": "ORTHANC"})}
    bridge = commands["bridge"]
    assert bridge.env["CXR_BRIDGE_PORT"] == "11999" and bridge.env["CXR_BRIDGE_GATEWAY_URL"] == "http://127.0.0.1:9080"
    assert bridge.env["CXR_BRIDGE_ALLOWED_CALLERS"] == "ORTHANC"  # an operator's own setting passes through
    assert bridge.health_url() == f"http://127.0.0.1:{stack.bridge.http_port}/ready"
