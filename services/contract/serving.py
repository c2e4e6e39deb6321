"""How an HTTP service of the stack is served: its own TLS, and how long a stop waits for requests in flight.

The gateway and the classifier worker inherit these into their settings (GATEWAY_TLS_CERT_FILE,
CLASSIFIER_TLS_CERT_FILE, ...), so a worker on another host than the gateway serves HTTPS the same way,
and both hand the same options to uvicorn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, model_validator


class ServingSettings(BaseModel):
    # HTTPS: a PEM certificate (chain) and its key; without them plain HTTP, meant for 127.0.0.1 only.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # After SIGTERM, requests in flight get this long to finish; then the connections still open are closed (a
    # client that never closes one would otherwise hold the stop for ever). Kubernetes waits 30 s by default.
    shutdown_grace_s: int = Field(default=20, ge=1)

    @model_validator(mode="after")
    def _tls_files(self) -> ServingSettings:
        prefix = str(self.model_config.get("env_prefix", ""))
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError(f"set both {prefix}TLS_CERT_FILE and {prefix}TLS_KEY_FILE, or neither")
        for tls_file in (self.tls_cert_file, self.tls_key_file):
            if tls_file is not None and not tls_file.is_file():
                raise ValueError(f"TLS file {tls_file} does not exist")
        return self

    def uvicorn_options(self) -> dict[str, Any]:
        return {
            "ssl_certfile": self.tls_cert_file,
            "ssl_keyfile": self.tls_key_file,
            "timeout_graceful_shutdown": self.shutdown_grace_s,
        }
