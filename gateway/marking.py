"""Machine-readable marking of AI-generated answers (EU AI Act Art. 50(2)), as a response header.

`AI-Disclosure` follows the IETF draft "AI Content Disclosure Header"
(draft-abaris-aicdh): a Structured Field dictionary whose `mode` says the
content is AI-originated. The body says the same in `cxr.provenance`.
Only successful answers of the generating endpoints are marked: an error
body is the gateway's own words.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"ai-disclosure"
MARKED_PATHS = frozenset({"/v1/chat/completions", "/v1/analyze"})


def disclosure(model: str) -> bytes:
    safe = "".join(c for c in model if c.isalnum() or c in "-._:/")  # a Structured Field string, nothing to escape
    return f'mode=ai-originated, model="{safe}", provider="cxr-serve"'.encode()


class AiDisclosure:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in MARKED_PATHS:
            await self.app(scope, receive, send)
            return

        async def marked(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 400:
                model = scope.get("state", {}).get("model", "unknown")
                message["headers"] = [*message.get("headers", []), (HEADER, disclosure(model))]
            await send(message)

        await self.app(scope, receive, marked)
