"""`python -m services.bridge pacs analyze|watch|agreement`: chest X-rays read from a PACS over DICOMweb, SRs stored
back; and the radiologists' agreement with each model, read from the verified SRs there."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.bridge.pacs.dicomweb import Pacs


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pacs = commands.add_parser("pacs", help="analyse chest X-rays from a PACS over DICOMweb; SRs stored back")
    pacs_sub = pacs.add_subparsers(dest="pacs_command", required=True)
    pacs_analyze = pacs_sub.add_parser("analyze", help="every eligible X-ray of one study, now")
    pacs_analyze.add_argument("--study", required=True, help="Study Instance UID")
    pacs_watch = pacs_sub.add_parser("watch", help="every new chest study, once each, until stopped")
    pacs_watch.add_argument("--state-file", type=Path, help="progress kept across restarts (CXR_PACS_STATE_FILE)")
    pacs_watch.add_argument("--interval", type=float, help="seconds between polls (CXR_PACS_POLL_INTERVAL_S)")
    agreement = pacs_sub.add_parser(
        "agreement", help="the radiologists' agreement with each model version, from the verified SRs"
    )
    agreement.add_argument("--since", type=dt.date.fromisoformat, required=True, help="first signing day (YYYY-MM-DD, UTC)")
    agreement.add_argument("--until", type=dt.date.fromisoformat, required=True, help="last signing day, included")
    agreement.add_argument("--min-cases", type=int, default=20, help="signed positives and negatives needed for figures")
    agreement.add_argument("--model-cards", type=Path, default=Path("models"), help="a folder of model folders (cards)")
    for command in (pacs_analyze, pacs_watch, agreement):
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

    if args.pacs_command == "agreement":
        return _agreement(Pacs(settings), args, say)
    return asyncio.run(analyze() if args.pacs_command == "analyze" else watch_until_signalled())


def _agreement(pacs: Pacs, args: argparse.Namespace, say: Callable[[str], None]) -> int:
    from services.bridge.pacs import agreement
    from services.bridge.pacs.dicomweb import PacsUnavailable
    from services.bridge.pacs.review import signed_between
    from services.contract import modelcard

    since = dt.datetime.combine(args.since, dt.time(), dt.UTC)
    until = dt.datetime.combine(args.until + dt.timedelta(days=1), dt.time(), dt.UTC)
    try:
        signed = signed_between(pacs, since, until)
    except PacsUnavailable as error:
        say(f"PACS unavailable: {error}")
        return 2
    folders = sorted(p.parent for p in args.model_cards.glob(f"*/{modelcard.CARD_FILE}"))
    cards = {card.name: card for card in map(modelcard.read, folders)}
    say(f"{len(signed)} verified result(s) signed {args.since} to {args.until}")
    for line in agreement.table(agreement.agreement(signed), cards, args.min_cases):
        say(line)
    return 0
