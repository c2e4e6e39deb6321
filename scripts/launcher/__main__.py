"""`python -m scripts.launcher`: run the stack (`make run`) or print a role's launch arguments.

run   [--profile cpu] [--only report,fracture]   start, wait for health, print READY, restart what dies,
                                                  stop on Ctrl-C/SIGTERM/SIGHUP
args  --profile gpu --role report                 the vLLM server arguments models.yaml gives that role
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from scripts.launcher import config, supervisor
from scripts.launcher.commands import service_commands, vllm_server_args
from services.contract.paths import REPO_ROOT


class _Stop(Exception):
    """SIGINT, SIGTERM or SIGHUP, turned into an exception so the supervisor's cleanup runs wherever it came."""


def _raise_stop(_signum: int, _frame: object) -> None:
    """The first stop signal starts the stop; the ones after it change nothing, so none can cut it short.

    One stop often brings several: a SIGTERM to `make run`'s process group reaches the launcher, and GNU make
    forwards its own; a closing terminal adds SIGHUP; an impatient Ctrl-C another SIGINT.
    """
    for stop_signal in supervisor.STOP_SIGNALS:
        signal.signal(stop_signal, signal.SIG_IGN)
    raise _Stop


def _print_ready(service: supervisor.RunningService) -> None:
    command = service.command
    print(f"  {command.name:<16} {command.scheme}://127.0.0.1:{command.port}  (log: {service.log_path})", flush=True)


def run(args: argparse.Namespace) -> int:
    stack = config.load(args.profile)
    commands = service_commands(stack)
    gateway_command = next(c for c in commands if c.name == "gateway")  # where READY points, also without --only
    if args.only:
        wanted = set(args.only.split(","))
        commands = [c for c in commands if c.name in wanted or c.name.removeprefix("vllm-") in wanted]
    clients = ("gateway", "bridge")  # each starts once what it calls is healthy
    backends = [c for c in commands if c.name not in clients]
    gateway = [c for c in commands if c.name == "gateway"]
    bridge = [c for c in commands if c.name == "bridge"]
    # A process manager or `timeout` sends SIGTERM, a closing terminal SIGHUP, Ctrl-C SIGINT: each stops every
    # service. The services run in their own sessions, so a signal to the launcher's process group reaches
    # only the launcher, which then stops their whole process groups.
    for stop_signal in supervisor.STOP_SIGNALS:
        signal.signal(stop_signal, _raise_stop)
    print(f"cxr-serve: profile {stack.profile}: {stack.description}", flush=True)
    try:
        stages = [backends, gateway, bridge]
        with supervisor.running(stages, args.log_dir, args.timeout, _print_ready, args.stop_grace_s) as services:
            host = _ready_host(gateway_command.env["GATEWAY_HOST"])
            print(f"READY {gateway_command.scheme}://{host}:{gateway_command.port}", flush=True)
            supervisor.supervise(services, args.log_dir, _report)
    except supervisor.LaunchError as error:
        print(f"cxr-serve: {error}", file=sys.stderr, flush=True)
        return 1
    except _Stop:
        pass  # the supervisor has stopped every child on the way out
    print("cxr-serve: stopped", flush=True)
    return 0


def _ready_host(bind_host: str) -> str:
    """Where a user on this machine reaches the gateway: a wildcard bind is reached on 127.0.0.1."""
    return "127.0.0.1" if bind_host in ("0.0.0.0", "::") else bind_host


def _report(event: str) -> None:
    print(f"cxr-serve: {event}", file=sys.stderr, flush=True)


def print_args(args: argparse.Namespace) -> int:
    role = config.load(args.profile).roles[args.role]
    print(json.dumps({"argv": vllm_server_args(role, host="0.0.0.0"), "env": role.env}, indent=2))
    return 0


def manifests_command(args: argparse.Namespace) -> int:
    from scripts.launcher import manifests

    if args.check:
        stale = manifests.stale_files()
        for path in stale:
            print(f"out of date: {path.relative_to(REPO_ROOT)} (run `make deploy-files`)", file=sys.stderr)
        return 1 if stale else 0
    for path in manifests.write_all():
        print(f"wrote {path.relative_to(REPO_ROOT)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.launcher", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="start the stack and wait")
    run_parser.add_argument("--profile", default=None, help="profile in deploy/models.yaml (default: $CXR_PROFILE or cpu)")
    run_parser.add_argument("--only", default="", help="comma-separated services, e.g. report,fracture,classifier,gateway,bridge")
    run_parser.add_argument("--log-dir", type=Path, default=REPO_ROOT / "logs")
    run_parser.add_argument("--timeout", type=float, default=900.0, help="seconds each stage may take to become healthy")
    run_parser.add_argument(
        "--stop-grace-s",
        type=float,
        default=float(os.environ.get("CXR_STOP_GRACE_S", supervisor.STOP_GRACE_S)),
        help="seconds from SIGTERM to SIGKILL when stopping, for requests in flight (default: $CXR_STOP_GRACE_S or 15)",
    )
    run_parser.set_defaults(handler=run)
    args_parser = sub.add_parser("args", help="print one role's vLLM arguments")
    args_parser.add_argument("--profile", required=True, choices=config.profile_names())
    args_parser.add_argument("--role", required=True, choices=["report", "fracture"])
    args_parser.set_defaults(handler=print_args)
    manifests_parser = sub.add_parser("manifests", help="write deploy/docker-compose*.yml and deploy/k8s/ from models.yaml")
    manifests_parser.add_argument("--check", action="store_true", help="only report files that differ")
    manifests_parser.set_defaults(handler=manifests_command)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
