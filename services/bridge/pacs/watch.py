"""Watching a PACS: every new chest study analysed once, progress kept across restarts, a PACS outage survived.

Each poll asks QIDO-RS for studies with an accepted modality dated within the
last `lookback_days` (paged, and over narrower date windows where the PACS caps
its answers: services/bridge/pacs/dicomweb.py); those not yet in the state file are analysed (bounded by
`concurrency` images at once). A study enters the state file only when every
image in it is stored, skipped or refused, so a failure is retried on the next
poll, and the SR series UID derived from each image makes a retry after a crash
between STOW and the state write a no-op. When the PACS does not answer, the
watcher says so and waits, doubling up to `retry_max_s`, and never exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from services.bridge.pacs.analyze import analyze_study, gateway_client
from services.bridge.pacs.dicomweb import Pacs, PacsUnavailable
from services.bridge.pacs.settings import PacsSettings

Say = Callable[[str], None]


@dataclass
class WatchState:
    """Analysed study UIDs with their study dates (dates let old entries be dropped)."""

    path: Path
    done: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> WatchState:
        if not path.exists():
            return cls(path)
        return cls(path, dict(json.loads(path.read_text())["done"]))

    def save(self) -> None:
        """Atomically: a crash leaves the old file or the new one, never half of one."""
        partial = self.path.with_suffix(self.path.suffix + ".tmp")
        partial.write_text(json.dumps({"done": self.done}, indent=1, sort_keys=True))
        os.replace(partial, self.path)

    def forget_before(self, study_date: str) -> None:
        self.done = {uid: date for uid, date in self.done.items() if not date or date >= study_date}


async def poll_once(
    pacs: Pacs, gateway: httpx.AsyncClient, state: WatchState, settings: PacsSettings, slots: asyncio.Semaphore, say: Say
) -> None:
    first = dt.date.today() - dt.timedelta(days=settings.lookback_days)
    since = first.strftime("%Y%m%d")
    studies = await asyncio.to_thread(pacs.studies_since, first)
    for day in studies.capped_days:
        say(f"the PACS capped its answer for {day} at {settings.qido_cap} studies: some may be missed (raise its cap)")
    new = {uid: date for uid, date in studies.found.items() if uid not in state.done}
    if new:
        say(f"{len(new)} new chest stud{'y' if len(new) == 1 else 'ies'}")

    async def one(study_uid: str, study_date: str) -> None:
        outcomes = await analyze_study(pacs, gateway, study_uid, settings.language, slots)
        for outcome in outcomes:
            say(outcome.line())
        if all(o.status != "failed" for o in outcomes):
            state.done[study_uid] = study_date
            state.save()
        say(f"study {study_uid}: {len(outcomes)} image(s), {'done' if study_uid in state.done else 'retried next poll'}")

    await asyncio.gather(*(one(uid, date) for uid, date in sorted(new.items())))
    state.forget_before(since)
    state.save()


async def watch(settings: PacsSettings, stop: asyncio.Event, say: Say) -> None:
    pacs = Pacs(settings)
    state = WatchState.load(settings.state_file)
    slots = asyncio.Semaphore(settings.concurrency)
    wait = settings.poll_interval_s
    say(f"watching {settings.url} every {settings.poll_interval_s:g} s; {len(state.done)} studies already done")
    key = settings.gateway_api_key.get_secret_value() if settings.gateway_api_key else None
    async with gateway_client(settings.gateway_url, key, settings.timeout_s, settings.gateway_ca_file) as gateway:
        while not stop.is_set():
            try:
                await poll_once(pacs, gateway, state, settings, slots, say)
                wait = settings.poll_interval_s
            except PacsUnavailable as error:
                say(f"PACS unavailable ({error}); retrying in {wait:g} s")
                wait = min(wait * 2, settings.retry_max_s)
            with contextlib.suppress(TimeoutError):  # woken early by a stop
                await asyncio.wait_for(stop.wait(), timeout=wait)
    say("stopped")
