"""The production launch arguments, checked by vLLM's own argument parser (no engine is started)."""

import pytest
from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
from vllm.utils.argparse_utils import FlexibleArgumentParser

from scripts.launcher import config
from scripts.launcher.commands import vllm_server_args

VLLM_PROFILES_AND_ROLES = [(profile, role) for profile in config.profile_names() for role in ("report", "fracture")]


@pytest.fixture(scope="module")
def parser():
    return make_arg_parser(FlexibleArgumentParser())


@pytest.mark.parametrize(("profile", "role"), VLLM_PROFILES_AND_ROLES)
def test_vllm_accepts_every_profiles_arguments(parser, profile, role):
    role_config = config.load(profile, env={}).roles[role]
    parsed = parser.parse_args(vllm_server_args(role_config))
    validate_parsed_serve_args(parsed)
    assert parsed.model == role_config.model_location()
    assert parsed.served_model_name == [role_config.served_name]
    for key, value in role_config.args.items():
        parsed_value = getattr(parsed, key.replace("-", "_"))
        if isinstance(value, dict) and not isinstance(parsed_value, dict):  # a config object: compare its fields
            parsed_value = {name: getattr(parsed_value, name) for name in value}
        assert parsed_value == value or str(parsed_value) == str(value), f"--{key}"


def test_gpu_profile_loads_chexfract_with_remote_code_and_fits_one_gpu(parser):
    stack = config.load("gpu", env={})
    fracture = parser.parse_args(vllm_server_args(stack.roles["fracture"]))
    report = parser.parse_args(vllm_server_args(stack.roles["report"]))
    assert fracture.trust_remote_code is True
    assert fracture.model.startswith("AIRI-Institute/chexfract")
    assert report.model == "Qwen/Qwen2.5-7B-Instruct"
    assert fracture.gpu_memory_utilization + report.gpu_memory_utilization <= 0.9  # room for the classifier


def test_transformers_backend_switch_reaches_vllm(parser):
    fracture = config.load("gpu-transformers", env={}).roles["fracture"]
    assert parser.parse_args(vllm_server_args(fracture)).model_impl == "transformers"


def test_a_misspelt_flag_is_refused(parser):
    with pytest.raises(SystemExit):
        parser.parse_args(["--model", "x", "--gpu-memory-utilisation", "0.4"])
