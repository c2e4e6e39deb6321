"""JSON-line logs for every cxr-serve process.

Only fields passed explicitly in `extra={"fields": {...}}` are logged besides
the message: request ids, routes, status codes, timings. Callers never pass
image bytes, prompts, report text or patient identifiers, and nothing here
formats request bodies.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Literal

from pydantic import BaseModel

LogLevel = Literal["debug", "info", "warning", "error"]


class LogSettings(BaseModel):
    """Mixed into each service's settings (GATEWAY_LOG_LEVEL, CLASSIFIER_LOG_LEVEL, CXR_BRIDGE_LOG_LEVEL)."""

    log_level: LogLevel = "info"  # the least severe level logged: debug, info (a line per request), warning, error


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(entry, ensure_ascii=False)


def configure(level: LogLevel = "info") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's access log would print full request lines; our middleware logs what is safe.
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs every backend call at INFO; our own request lines carry what matters.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpx2").setLevel(logging.WARNING)
