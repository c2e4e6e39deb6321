"""What `make run` launches for a role, to compare deployments with (generated files, running containers)."""

from scripts.launcher.commands import service_commands
from scripts.launcher.config import StackConfig


def native_vllm_args(stack: StackConfig, role: str) -> list[str]:
    command = next(c for c in service_commands(stack) if c.name == f"vllm-{role}")
    return command.argv[3:]  # after `python -m <module>`


def without_deployment_specifics(args: list[str]) -> list[str]:
    """Every flag but `--model PATH` and `--host ADDR`: where the weights live and the bind address differ by design."""
    kept, skip_next = [], False
    for arg in args:
        if skip_next:
            skip_next = False
        elif arg in ("--model", "--host"):
            skip_next = True
        else:
            kept.append(arg)
    return kept
