"""`python -m services.bridge pacs analyze|watch`: chest X-rays read from a PACS over DICOMweb, SRs stored back."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pacs = commands.add_parser("pacs", help="analyse chest X-rays from a PACS over DICOMweb; SRs stored back")
    pacs_sub = pacs.add_subparsers(dest="pacs_command", required=True)
    pacs_analyze = pacs_sub.add_parser("analyze", help="every eligible X-ray of one study, now")
    pacs_analyze.add_argument("--study", required=True, help="Study Instance UID")
    pacs_watch = pacs_sub.add_parser("watch", help="every new chest study, once each, until stopped")
    pacs_watch.add_argument("--state-file", type=Path, help="progress kept across restarts (CXR_PACS_STATE_FILE)")
    pacs_watch.add_argument("--interval", type=float, help="seconds between polls (CXR_PACS_POLL_INTERVAL_S)")
    for command in (pacs_analyze, pacs_watch):
        command.add_argument("--pacs-url", help="DICOMweb base URL (CXR_PACS_URL)")


def pacs_command(args: argparse.Namespace) -> int:
    """`pacs analyze --study UID` or `pacs watch`; settings from CXR_PACS_*, overridden by the flags given."""
    import signal

    from services.bridge.pacs.analyze import analyze_study, gateway_client
    from services.bridge.pacs.dicomweb import Pacs, PacsUnavailable
    from services.bridge.pacs.settings import PacsSettings
    from services.bridge.pacs.watch import watch

    flags = {
        "url": args.pacs_url,
        "state_file": getattr(args, "state_file", None),  # watch's flags
        "poll_interval_s": getattr(args, "interval", None),
    }
    settings = PacsSettings(**{k: v for k, v in flags.items() if v is not None})

    def say(line: str) -> None:
        print(line, flush=True)

    async def analyze() -> int:
        key = settings.gateway_api_key.get_secret_value() if settings.gateway_api_key else None
        async with gateway_client(settings.gateway_url, key, settings.timeout_s, settings.gateway_ca_file) as gateway:
            slots = asyncio.Semaphore(settings.concurrency)
            try:
                outcomes = await analyze_study(Pacs(settings), gateway, args.study, settings.language, slots)
            except PacsUnavailable as error:
                say(f"PACS unavailable: {error}")
                return 2
        for outcome in outcomes:
            say(outcome.line())
        say(f"{len(outcomes)} image(s) in study {args.study}")
        return 1 if any(o.status == "failed" for o in outcomes) else 0

    async def watch_until_signalled() -> int:
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        await watch(settings, stop, say)
        return 0

    return asyncio.run(analyze() if args.pacs_command == "analyze" else watch_until_signalled())
