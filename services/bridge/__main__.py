"""`python -m services.bridge`: the Storage SCP and the analyser, until SIGTERM or SIGINT; and the operator's CLI.

    python -m services.bridge                     serve (the default)
    python -m services.bridge status              instances per state, deliveries per destination and state
    python -m services.bridge dead-letters        what will not be analysed or delivered without an operator, and why
    python -m services.bridge replay SOP_UID      put one back in the queue and the outbox (--all: every dead letter;
                                                  --destination NAME: only that destination's deliveries)
    python -m services.bridge pacs analyze|watch  DICOMweb: studies read from a PACS, SRs stored back (pacs/)
    python -m services.bridge pacs agreement      the radiologists' agreement per model version, from the verified SRs

The CLI reads and writes the state database of CXR_BRIDGE_STATE_DIR beside a running bridge (SQLite, WAL);
a replayed instance is taken up within seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable

import uvicorn
from fastapi import APIRouter
from pydicom import Dataset, dcmwrite

from services.bridge import destinations, ops, scp
from services.bridge.analysis import Analyzer, gateway_client
from services.bridge.delivery import Deliverer
from services.bridge.ops import BridgeMetrics
from services.bridge.pacs import cli as pacs_cli
from services.bridge.settings import BridgeSettings
from services.bridge.state import State, open_state
from services.contract import jsonlog
from services.contract.review import SignedOut

log = logging.getLogger("bridge")


async def serve(settings: BridgeSettings) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    state = open_state(settings.state_dir)
    sending = destinations.configured(settings)
    metrics = BridgeMetrics()
    metrics.watch(state, sending)
    async with gateway_client(settings) as gateway:
        deliverer = Deliverer(state.outbox, state.spool, sending, settings, metrics.delivery)
        preliminary = [name for name, destination in sending.items() if "preliminary" in destination.takes]
        analyzer = Analyzer(state.spool, gateway, settings, metrics.analysis, preliminary, deliverer.wake.set)

        def wake() -> None:  # from an association's thread
            loop.call_soon_threadsafe(analyzer.wake.set)

        store = scp.StoreHandler(state.spool, settings, wake, metrics.c_store)
        ae = scp.application_entity(settings)
        server = ae.start_server((settings.host, settings.port), block=False, evt_handlers=scp.handlers(store))
        assert server is not None, "a non-blocking start returns its server"
        listening = threading.Event()  # cleared once shutdown begins
        listening.set()
        signed = [name for name, destination in sending.items() if "signed" in destination.takes]
        review = _review_api(settings, state, signed, deliverer.wake.set)
        config = uvicorn.Config(
            ops.app(state, metrics, listening.is_set, review), host=settings.host, port=settings.http_port, log_config=None
        )
        http = ops.Server(config)
        bound = config.bind_socket()  # the port is open before the ready line; in use: the start fails here
        work = [asyncio.create_task(analyzer.run()), asyncio.create_task(deliverer.run())]
        tasks = [*work, asyncio.create_task(http.serve(sockets=[bound]))]
        fields = {"port": settings.port, "http_port": settings.http_port, "ae_title": settings.ae_title}
        log.info("ready", extra={"fields": {**fields, **state.spool.counts(), "destinations": sorted(sending)}})
        try:
            await stop.wait()
        finally:
            listening.clear()
            server.shutdown()  # no new associations; those in progress finish their C-STORE
            http.should_exit = True
            for task in work:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            state.close()


def _review_api(settings: BridgeSettings, state: State, sending: list[str], wake: Callable[[], None]) -> APIRouter | None:
    """The review API when CXR_BRIDGE_REVIEW_TOKEN is set, against the PACS of CXR_PACS_*; a signed result goes to
    `sending` (the RIS's ORU^R01, the FHIR server's DiagnosticReport, as configured) through the outbox, from the
    verified SR the PACS holds."""
    if settings.review_token is None:
        return None
    from services.bridge.pacs import review_api
    from services.bridge.pacs.dicomweb import Pacs
    from services.bridge.pacs.review import Reviews
    from services.bridge.pacs.settings import PacsSettings

    reviews = Reviews(Pacs(PacsSettings()))

    async def on_signed(stored: Dataset, out: SignedOut) -> None:
        if not sending:
            return
        data = io.BytesIO()
        dcmwrite(data, stored, enforce_file_format=True)
        result = out.model_dump_json()
        await asyncio.to_thread(state.spool.signed, data.getvalue(), out.verified_sop, out.study, result, sending, time.time())
        wake()

    token = settings.review_token.get_secret_value()
    return review_api.router(reviews, token, settings.dicom_policy(), on_signed)


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
    replay.add_argument("--destination", help="only deliveries to this destination (pacs-dimse, pacs-stow, ris)")
    pacs_cli.add_parser(commands)
    return parser


def _operate(command: str, args: argparse.Namespace, state: State) -> int:
    if command == "status":
        for name, count in sorted(state.spool.counts().items()):
            print(f"{name:<10} {count}")
        for (destination, name), count in sorted(state.outbox.counts().items()):
            print(f"{destination} {name:<10} {count}")
        return 0
    if command == "dead-letters":
        for sop, name, attempts, why in state.spool.dead_letters():
            print(f"{sop}  {name}  after {attempts} attempt(s): {why}")
        for sop, destination, attempts, why in state.outbox.dead_letters():
            print(f"{sop}  undelivered to {destination}  after {attempts} attempt(s): {why}")
        return 0
    which: str | None = None if args.all else args.sop_instance_uid
    now = time.time()
    instances = 0 if args.destination else state.spool.replay(which, now)
    deliveries = state.outbox.replay(which, args.destination, now)
    print(f"{instances} instance(s) back in the queue, {deliveries} delivery(ies) back in the outbox")
    return 0 if instances or deliveries else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = BridgeSettings()
    command = args.command or "serve"
    if command == "pacs":
        return pacs_cli.pacs_command(args)
    if command == "serve":
        jsonlog.configure(settings.log_level)
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)  # its INFO lines name the peers' AE titles per PDU
        asyncio.run(serve(settings))
        return 0
    state = open_state(settings.state_dir)
    try:
        return _operate(command, args, state)
    finally:
        state.close()


if __name__ == "__main__":
    sys.exit(main())
