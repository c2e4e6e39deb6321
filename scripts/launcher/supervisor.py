"""Start a stack's services as child processes, wait until each is healthy, restart the ones that die, stop them all.

Each child runs in its own process group, so stopping it also stops what it
started (vLLM's engine core and workers): no orphans, and the ports are free
for the next `make run` as soon as this returns. A service that exits on its
own is restarted (`RestartPolicy`) once what was left of its process group is
killed: a vLLM API server killed by the OOM killer or by hand leaves its
engine process behind holding gigabytes and the model, which must go first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from scripts.launcher.commands import ServiceCommand


class LaunchError(RuntimeError):
    """A service could not be started; the message names it."""


@dataclass
class RunningService:
    command: ServiceCommand
    process: subprocess.Popen[bytes]
    log_path: Path
    started_at: float = field(default_factory=time.monotonic)
    restarts: int = 0  # in a row: reset once the service has stayed up `RestartPolicy.stable_s`
    healthy: bool = False


@dataclass(frozen=True)
class RestartPolicy:
    """Always restart, after 1, 2, 4 ... s up to `max_delay_s`; a service that stays up `stable_s` starts over at 1 s.

    The backoff keeps a service that cannot start (a broken model folder, a
    port taken by something else) from spinning the machine, while a one-off
    crash is back within seconds plus the service's own start-up time.
    """

    first_delay_s: float = 1.0
    max_delay_s: float = 60.0
    stable_s: float = 120.0

    def delay(self, restarts: int) -> float:
        return min(self.max_delay_s, self.first_delay_s * 2**restarts)


def check_port_free(command: ServiceCommand, host: str = "127.0.0.1") -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, command.port))
        except OSError as error:
            raise LaunchError(
                f"{command.name}: port {command.port} is already in use ({error.strerror}); "
                f"stop what holds it or set another port (see deploy/models.yaml)"
            ) from None


def _health_client() -> httpx.Client:
    # It polls its own children on 127.0.0.1 for readiness, not identity: a gateway serving HTTPS with a
    # certificate for its public name is still polled (and the certificate's chain checked by clients).
    return httpx.Client(timeout=2.0, verify=False)


def _log_tail(path: Path, lines: int = 15) -> str:
    text = path.read_text(errors="replace").splitlines() if path.exists() else []
    return "\n".join("    " + line for line in text[-lines:])


def start(command: ServiceCommand, log_dir: Path, *, append: bool = False) -> RunningService:
    """Start one service; a restart appends to its log, so the crash that caused it stays readable."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{command.name}.log"
    with log_path.open("ab" if append else "wb") as log:
        process = subprocess.Popen(
            command.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **command.env},
            start_new_session=True,  # own process group: stop() reaches its children too
        )
    return RunningService(command, process, log_path)


def wait_healthy(services: list[RunningService], timeout_s: float, on_ready: Callable[[RunningService], None]) -> None:
    """Poll every service's health URL until all answer 200; fail fast if one exits."""
    pending = list(services)
    deadline = time.monotonic() + timeout_s
    with _health_client() as client:
        while pending:
            for service in list(pending):
                if service.process.poll() is not None:
                    raise LaunchError(
                        f"{service.command.name} exited with code {service.process.returncode} while starting; "
                        f"last lines of {service.log_path}:\n{_log_tail(service.log_path)}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(service.command.health_url()).status_code == 200:
                        pending.remove(service)
                        service.healthy = True
                        on_ready(service)
            if pending and time.monotonic() > deadline:
                names = ", ".join(s.command.name for s in pending)
                raise LaunchError(f"not healthy after {timeout_s:.0f} s: {names}; see their logs in {pending[0].log_path.parent}")
            time.sleep(0.5)


def reap(service: RunningService) -> None:
    """Kill what is left of an exited service's process group (its engine and workers), and collect it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(service.process.pid, signal.SIGKILL)
    service.process.wait()


def _restart(service: RunningService, log_dir: Path) -> RunningService:
    check_port_free(service.command)
    restarted = start(service.command, log_dir, append=True)
    restarted.restarts = service.restarts + 1
    return restarted


def supervise(
    services: list[RunningService],
    log_dir: Path,
    report: Callable[[str], None],
    policy: RestartPolicy = RestartPolicy(),
    poll_s: float = 1.0,
) -> None:
    """Forever: restart a service that exited, after its backoff; report it exiting and healthy again.

    `services` is updated in place, so the caller's `stop()` reaches the restarted processes.
    """
    due: dict[int, float] = {}  # index in `services` -> when its restart is due
    with _health_client() as client:
        while True:
            now = time.monotonic()
            for index, service in enumerate(services):
                if index in due:
                    if now >= due[index]:
                        del due[index]
                        try:
                            services[index] = _restart(service, log_dir)
                        except LaunchError as error:  # its port is still taken: try again later
                            report(str(error))
                            due[index] = now + policy.delay(service.restarts + 1)
                            service.restarts += 1
                        else:
                            report(f"{service.command.name} restarted (restart {services[index].restarts} in a row)")
                    continue
                if service.process.poll() is not None:
                    reap(service)
                    if now - service.started_at >= policy.stable_s:
                        service.restarts = 0
                    due[index] = now + policy.delay(service.restarts)
                    report(
                        f"{service.command.name} exited with code {service.process.returncode}; "
                        f"restarting in {due[index] - now:.0f} s (log: {service.log_path})"
                    )
                elif not service.healthy:
                    with contextlib.suppress(httpx.HTTPError):
                        service.healthy = client.get(service.command.health_url()).status_code == 200
                    if service.healthy:
                        report(f"{service.command.name} is healthy again")
            time.sleep(poll_s)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STOP_GRACE_S = 15.0  # SIGTERM to SIGKILL: time for requests in flight to finish (launcher --stop-grace-s)


@contextlib.contextmanager
def _stop_signals_held() -> Iterator[None]:
    """Stop signals stay pending until the block ends, so nothing interrupts a stop half-way.

    Only around code that starts no process: a child would inherit the blocked mask.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _child_pids() -> set[int]:
    """This process's live children, read from /proc: one whose start a signal cut short is among them too."""
    me = str(os.getpid())
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            if stat.read_text().rsplit(")", 1)[1].split()[1] == me:  # the fields after "(comm)": state, ppid, ...
                children.add(int(stat.parent.name))
    return children


class _Child:
    """One child of the launcher while it stops: a recorded service's Popen, or just a pid read from /proc."""

    def __init__(self, pid: int, process: subprocess.Popen[bytes] | None) -> None:
        self.pid, self.process = pid, process
        # One the supervisor already collected (exited, its restart pending) has a pid that may be another's now.
        self.collected = process is not None and process.returncode is not None

    def signal(self, sig: signal.Signals) -> None:
        """Its whole process group; the child alone while it is uncollected (so its pid is still its own)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)
        if not self.collected:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def collect(self, deadline: float | None) -> None:
        """Wait for it until `deadline` (None: as long as it takes) and collect its exit status."""
        while not self.collected:
            if self.process is not None:
                self.collected = self.process.poll() is not None
            else:
                try:
                    self.collected = os.waitpid(self.pid, os.WNOHANG)[0] == self.pid
                except ChildProcessError:
                    self.collected = True
            if self.collected or (deadline is not None and time.monotonic() >= deadline):
                return
            time.sleep(0.05)


def stop(services: list[RunningService], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM every child's process group, then SIGKILL what is still there after the grace period; collect all.

    Every child is reached, also one started as the signal came and not in `services` yet, and further stop
    signals wait until it is done (GNU make forwards its own SIGTERM to the launcher, a terminal adds SIGHUP).
    """
    with _stop_signals_held():
        known = {service.process.pid: service.process for service in services}
        children = [_Child(pid, known.get(pid)) for pid in sorted(known.keys() | _child_pids())]
        for child in children:
            child.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for child in children:
            child.collect(deadline)
        for child in children:
            child.signal(signal.SIGKILL)  # what ignored SIGTERM, and stragglers left in its group
            child.collect(None)


@contextlib.contextmanager
def running(
    stages: list[list[ServiceCommand]],
    log_dir: Path,
    timeout_s: float,
    on_ready: Callable[[RunningService], None] = lambda _: None,
    stop_grace_s: float = STOP_GRACE_S,
) -> Iterator[list[RunningService]]:
    """Start the stages in order (each stage's services together), yield once all are healthy; stop them after."""
    for command in (c for stage in stages for c in stage):
        check_port_free(command)
    started: list[RunningService] = []
    try:
        for stage in stages:
            batch = [start(command, log_dir) for command in stage]
            started.extend(batch)
            wait_healthy(batch, timeout_s, on_ready)
        yield started
    finally:
        stop(started, stop_grace_s)
