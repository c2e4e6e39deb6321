"""`python -m services.bridge`: the Storage SCP and the analyser, until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from services.bridge import scp
from services.bridge.analysis import Analyzer, gateway_client
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
    async with gateway_client(settings) as gateway:
        analyzer = Analyzer(spool, gateway, settings)

        def wake() -> None:  # from an association's thread
            loop.call_soon_threadsafe(analyzer.wake.set)

        store = scp.StoreHandler(spool, settings, wake)
        ae = scp.application_entity(settings)
        server = ae.start_server((settings.host, settings.port), block=False, evt_handlers=scp.handlers(store))
        assert server is not None, "a non-blocking start returns its server"
        log.info("ready", extra={"fields": {"port": settings.port, "ae_title": settings.ae_title, **spool.counts()}})
        work = asyncio.create_task(analyzer.run())
        try:
            await stop.wait()
        finally:
            server.shutdown()  # no new associations; those in progress finish their C-STORE
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
            spool.close()


def main() -> None:
    jsonlog.configure()
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)  # its INFO lines name the peers' AE titles per PDU
    asyncio.run(serve(BridgeSettings()))


if __name__ == "__main__":
    main()
