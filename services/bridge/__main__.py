"""`python -m services.bridge`: the Storage SCP and the analyser, until SIGTERM or SIGINT; and the operator's CLI.

    python -m services.bridge                     serve (the default)
    python -m services.bridge status              instances per state
    python -m services.bridge dead-letters        what will not be analysed without an operator, and why
    python -m services.bridge replay SOP_UID      put one back in the queue (--all: every dead letter)
    python -m services.bridge pacs analyze|watch  DICOMweb: studies read from a PACS, SRs stored back (pacs/)

The CLI reads and writes the state database of CXR_BRIDGE_STATE_DIR beside a running bridge (SQLite, WAL);
a replayed instance is taken up within seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import threading
import time

import uvicorn

from services.bridge import ops, scp
from services.bridge.analysis import Analyzer, gateway_client
from services.bridge.ops import BridgeMetrics
from services.bridge.pacs import cli as pacs_cli
from services.bridge.settings import BridgeSettings
from services.bridge.spool import Spool
from services.contract import jsonlog

log = logging.getLogger("bridge")


async def serve(settings: BridgeSettings) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    spool = Spool(settings.state_dir)
    metrics = BridgeMetrics()
    metrics.watch(spool)
    async with gateway_client(settings) as gateway:
        analyzer = Analyzer(spool, gateway, settings, metrics.analysis)

        def wake() -> None:  # from an association's thread
            loop.call_soon_threadsafe(analyzer.wake.set)

        store = scp.StoreHandler(spool, settings, wake, metrics.c_store)
        ae = scp.application_entity(settings)
        server = ae.start_server((settings.host, settings.port), block=False, evt_handlers=scp.handlers(store))
        assert server is not None, "a non-blocking start returns its server"
        listening = threading.Event()  # cleared once shutdown begins
        listening.set()
        config = uvicorn.Config(
            ops.app(spool, metrics, listening.is_set), host=settings.host, port=settings.http_port, log_config=None
        )
        http = ops.Server(config)
        bound = config.bind_socket()  # the port is open before the ready line; in use: the start fails here
        tasks = [asyncio.create_task(analyzer.run()), asyncio.create_task(http.serve(sockets=[bound]))]
        fields = {"port": settings.port, "http_port": settings.http_port, "ae_title": settings.ae_title}
        log.info("ready", extra={"fields": {**fields, **spool.counts()}})
        try:
            await stop.wait()
        finally:
            listening.clear()
            server.shutdown()  # no new associations; those in progress finish their C-STORE
            http.should_exit = True
            tasks[0].cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            spool.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m services.bridge", description="cxr-serve's DICOM bridge")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="the Storage SCP and the analyser (the default)")
    commands.add_parser("status", help="instances per state")
    commands.add_parser("dead-letters", help="instances that will not be analysed without an operator, and why")
    replay = commands.add_parser("replay", help="put dead letters back in the queue")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("sop_instance_uid", nargs="?", help="the instance to replay")
    which.add_argument("--all", action="store_true", help="every dead letter")
    pacs_cli.add_parser(commands)
    return parser


def _operate(command: str, args: argparse.Namespace, spool: Spool) -> int:
    if command == "status":
        for state, count in sorted(spool.counts().items()):
            print(f"{state:<10} {count}")
        return 0
    if command == "dead-letters":
        for sop, state, attempts, why in spool.dead_letters():
            print(f"{sop}  {state}  after {attempts} attempt(s): {why}")
        return 0
    replayed = spool.replay(None if args.all else args.sop_instance_uid, time.time())
    print(f"{replayed} instance(s) back in the queue")
    return 0 if replayed else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = BridgeSettings()
    command = args.command or "serve"
    if command == "pacs":
        return pacs_cli.pacs_command(args)
    if command == "serve":
        jsonlog.configure()
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)  # its INFO lines name the peers' AE titles per PDU
        asyncio.run(serve(settings))
        return 0
    spool = Spool(settings.state_dir)
    try:
        return _operate(command, args, spool)
    finally:
        spool.close()


if __name__ == "__main__":
    sys.exit(main())
