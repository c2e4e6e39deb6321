"""Cancel a request's backend calls when its client goes away.

A client that disconnects must not cost a full report generation. Streamed
answers are cancelled by Starlette itself (it stops the body on
`http.disconnect`); for the rest, `unless_disconnected` runs the work beside a
watcher of the ASGI `receive` channel and cancels the work when the client's
disconnect arrives. The cancelled httpx/openai calls close their
connections, and vLLM aborts a request whose connection closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import Request

from gateway.errors import ClientDisconnected

T = TypeVar("T")


async def _disconnected(request: Request) -> None:
    # The body has been read by now, so the next message on `receive` is the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
    if task.cancelled() or not task.done():
        raise ClientDisconnected()
    return task.result()
