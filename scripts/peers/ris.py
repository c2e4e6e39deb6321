"""A RIS on loopback: hl7apy's MLLP server (not one written here), acknowledging what it receives. Used by the
tests (tests/bridge/) and the bridge's latency benchmark (scripts/bench_bridge.py).

Each message is parsed by hl7apy (a second HL7 library checking what python-hl7 and hl7apy built) and
kept; the answer is the next of `answers` ("AA", "AE", "AR" or "silent": no answer for `silence_s`), then
"AA". stop() and start() keep what was received, as a RIS restart would keep its inbox.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message
from hl7apy.mllp import AbstractHandler, MLLPServer
from hl7apy.parser import parse_message

from scripts.launcher.process import free_port


@dataclass
class Received:
    message: Message
    text: str
    answer: str


@dataclass
class RisPeer:
    port: int = field(default_factory=free_port)
    answers: list[str] = field(default_factory=list)
    silence_s: float = 3.0
    received: list[Received] = field(default_factory=list)
    _server: MLLPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> RisPeer:
        peer = self

        class Handler(AbstractHandler):  # type: ignore[misc]
            def reply(self) -> str:
                return peer._reply(self.incoming_message)

        self._server = MLLPServer("127.0.0.1", self.port, {"ORU^R01^ORU_R01": (Handler,)}, timeout=30)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
        self._server = None

    def _reply(self, text: str) -> str:
        message = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT)
        with self._lock:
            answer = self.answers.pop(0) if self.answers else "AA"
            self.received.append(Received(message, text, answer))
        if answer == "silent":
            time.sleep(self.silence_s)
            raise ConnectionAbortedError("a RIS that never answers")  # hl7apy closes the connection
        ack = Message("ACK", version="2.5.1")
        ack.msh.msh_3, ack.msh.msh_9, ack.msh.msh_10 = "TESTRIS", "ACK^R01^ACK", "ack" + message.msh.msh_10.value[:17]
        ack.msa.msa_1, ack.msa.msa_2 = answer, message.msh.msh_10.value
        if answer != "AA":
            ack.msa.msa_3 = "test RIS: order unknown, send again"
        return str(ack.to_mllp())

    def acknowledged(self) -> list[str]:
        """The control ids the RIS answered AA, in order."""
        with self._lock:
            return [one.message.msh.msh_10.value for one in self.received if one.answer == "AA"]
