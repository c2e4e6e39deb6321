"""Who is calling: named clients from a clients file, their permissions and their own limits. No HTTP here.

The clients file (GATEWAY_CLIENTS_FILE, YAML) names each integration and what it may do:

    clients:
      - name: his                      # the actor in the audit trail and the 429s
        key_hashes: ["sha256:<salt>:<digest>"]   # two while a key is rotated
        certificate_subjects: ["CN=his.hospital.example,O=Example Hospital"]  # with mutual TLS (RFC 4514)
        permissions: [analyze]         # chat | analyze | review | admin
        models: [cxr-report]           # optional: only these model names
        max_concurrency: 4             # optional: its requests in flight at once
        requests_per_minute: 120       # optional: a token bucket, `burst` deep
        burst: 20

Keys are never stored: `python -m gateway clients new-key NAME` prints a new key once and its line for the
file. A key is 256 random bits, so one salted SHA-256 is as strong as a slow password hash would be (the
key cannot be guessed, only stolen) and costs microseconds per request. The file is read again on SIGHUP
and when it changes; a file that does not validate is refused, naming why, and the previous one stays.

Without a clients file or legacy keys (`make run`'s embedded default on 127.0.0.1) every caller is
`anonymous` with every permission. GATEWAY_API_KEYS, the flat list of an earlier version, still works:
each key is a client named by its key id (as the audit trail named it before) with every permission.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from gateway.errors import ClientOverLimit
from services.contract.validation import describe

log = logging.getLogger("gateway")

KEY_PREFIX = "cxr_"  # makes a leaked key recognisable to secret scanners
HASH_SCHEME = "sha256"


class Permission(StrEnum):
    CHAT = "chat"  # the pass-through models
    ANALYZE = "analyze"  # cxr-report, the classifier and /v1/analyze: an X-ray is analysed
    REVIEW = "review"  # a radiologist's verdict on a result
    ADMIN = "admin"  # metrics, API documents, the audit export


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str, salt: str | None = None) -> str:
    salt = salt or secrets.token_hex(16)
    return f"{HASH_SCHEME}:{salt}:{hashlib.sha256((salt + key).encode()).hexdigest()}"


def key_matches(key: str, stored: str) -> bool:
    _, salt, _ = stored.split(":")
    return hmac.compare_digest(hash_key(key, salt), stored)


def key_id(api_key: str) -> str:
    """The name of a legacy GATEWAY_API_KEYS key: enough to tell keys apart, useless to call the API with."""
    return "key-" + hashlib.sha256(api_key.encode()).hexdigest()[:12]


KeyHash = Annotated[str, StringConstraints(pattern=r"^sha256:[0-9a-f]{16,64}:[0-9a-f]{64}$")]
ClientName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
PERSON_PREFIX = "user:"  # a person's name (OpenID Connect) in the audit trail: never the name of a client


class Caller(BaseModel):
    """Who is calling, however they proved it (a key, a client certificate, a login): the audit trail's actor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    permissions: frozenset[Permission]
    full_name: str | None = None  # a person's name as the identity provider gives it (a review's signer)
    # The sites (DICOM InstitutionName) whose studies the caller may review; None: not restricted (no
    # GATEWAY_OIDC_SITES_CLAIM, or a client of the clients file).
    sites: frozenset[str] | None = None
    models: frozenset[str] | None = None  # None: every model its permissions allow
    max_concurrency: int | None = Field(default=None, ge=1)
    requests_per_minute: float | None = Field(default=None, gt=0)
    burst: int | None = Field(default=None, ge=1)  # the bucket's depth; default: a tenth of a minute's rate, ≥ 1

    def may(self, permission: Permission, model: str | None = None) -> bool:
        return permission in self.permissions and (model is None or self.models is None or model in self.models)


class ClientSpec(Caller):
    """One client of the clients file: an integration, with its own credentials."""

    name: ClientName
    key_hashes: list[KeyHash] = []
    # The subjects of its TLS client certificates (mutual TLS, gateway/server.py), as RFC 4514 writes them.
    certificate_subjects: frozenset[str] = frozenset()
    permissions: frozenset[Permission] = Field(min_length=1)

    @model_validator(mode="after")
    def _a_credential(self) -> ClientSpec:
        if not self.key_hashes and not self.certificate_subjects:
            raise ValueError(f"client {self.name!r} has neither key_hashes nor certificate_subjects")
        return self


class ClientsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    clients: list[ClientSpec]

    @model_validator(mode="after")
    def _unique(self) -> ClientsFile:
        names = [client.name for client in self.clients]
        hashes = [stored for client in self.clients for stored in client.key_hashes]
        subjects = [subject for client in self.clients for subject in client.certificate_subjects]
        if len(set(names)) != len(names):
            raise ValueError("two clients have the same name")
        if len(set(hashes)) != len(hashes):
            raise ValueError("two clients share a key hash")
        if len(set(subjects)) != len(subjects):
            raise ValueError("two clients share a certificate subject")
        return self


class ClientsFileInvalid(ValueError):
    """The clients file cannot be used; the message says why (never a key or a hash)."""


def read_clients_file(path: Path) -> ClientsFile:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        return ClientsFile.model_validate(document)
    except OSError as error:
        raise ClientsFileInvalid(f"{path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ClientsFileInvalid(f"{path}: not YAML ({getattr(error, 'problem', error)})") from None
    except ValidationError as error:
        raise ClientsFileInvalid(f"{path}: {describe(error, 'file')}") from None


ANONYMOUS = Caller(name="anonymous", permissions=frozenset(Permission))


@dataclass
class ClientLimits:
    """One client's token bucket and in-flight count; kept across reloads of the file (by client name)."""

    clock: Callable[[], float] = time.monotonic
    tokens: float | None = None
    updated: float = 0.0
    in_flight: int = 0

    def admit(self, spec: Caller) -> None:
        """Count one request in, or raise ClientOverLimit naming the limit; `release()` when it ends."""
        if spec.max_concurrency is not None and self.in_flight >= spec.max_concurrency:
            raise ClientOverLimit(spec.name, f"{spec.max_concurrency} requests in flight", 1)
        if spec.requests_per_minute is not None:
            self._take_token(spec, spec.requests_per_minute)
        self.in_flight += 1

    def release(self) -> None:
        self.in_flight -= 1

    def _take_token(self, spec: Caller, per_minute: float) -> None:
        rate = per_minute / 60
        depth = spec.burst or max(1, math.ceil(per_minute / 10))
        now = self.clock()
        tokens = depth if self.tokens is None else min(depth, self.tokens + (now - self.updated) * rate)
        self.updated = now
        if tokens < 1:
            self.tokens = tokens
            limit = f"{per_minute:g} requests per minute (burst {depth})"
            raise ClientOverLimit(spec.name, limit, max(1, math.ceil((1 - tokens) / rate)))
        self.tokens = tokens - 1


@dataclass
class Clients:
    """The clients in force now; `open` when none are configured (every caller anonymous, every permission)."""

    specs: tuple[ClientSpec, ...]
    limits: dict[str, ClientLimits] = field(default_factory=dict)

    @property
    def open(self) -> bool:
        return not self.specs

    def authenticate(self, key: str) -> ClientSpec | None:
        found = None
        for spec in self.specs:  # every hash is compared: the time taken does not tell which client matched
            if any(key_matches(key, stored) for stored in spec.key_hashes):
                found = spec
        return found

    def with_certificate(self, subject: str) -> ClientSpec | None:
        return next((spec for spec in self.specs if subject in spec.certificate_subjects), None)

    def limits_of(self, spec: Caller) -> ClientLimits:
        return self.limits.setdefault(spec.name, ClientLimits())


def legacy_clients(keys: list[str]) -> list[ClientSpec]:
    return [ClientSpec(name=key_id(key), key_hashes=[hash_key(key)], permissions=frozenset(Permission)) for key in keys]


class ClientsSource:
    """The clients file and the legacy keys, read at start-up (a bad file stops the gateway) and again on
    `reload()` (a bad file is refused and logged, the clients in force stay)."""

    def __init__(self, path: Path | None, legacy_keys: list[str]) -> None:
        self.path = path
        self._legacy = legacy_clients(legacy_keys)
        self._mtime = self._stat()
        self.clients = Clients(self._read())
        if legacy_keys:
            log.warning(
                "deprecated setting",
                extra={"fields": {"setting": "GATEWAY_API_KEYS", "use": "GATEWAY_CLIENTS_FILE (gateway/identity.py)"}},
            )

    def _stat(self) -> float | None:
        try:
            return self.path.stat().st_mtime if self.path is not None else None
        except OSError:
            return None

    def _read(self) -> tuple[ClientSpec, ...]:
        named = read_clients_file(self.path).clients if self.path is not None else []
        specs = (*named, *self._legacy)
        if len({spec.name for spec in specs}) != len(specs):
            raise ClientsFileInvalid("a client of the clients file has the name of a GATEWAY_API_KEYS key")
        return specs

    def reload(self) -> bool:
        """Read the file again; True when the new clients are in force."""
        self._mtime = self._stat()
        try:
            specs = self._read()
        except ClientsFileInvalid as error:
            log.error("clients file refused; the previous clients stay", extra={"fields": {"reason": str(error)}})
            return False
        self.clients = Clients(specs, self.clients.limits)
        log.info("clients reloaded", extra={"fields": {"clients": len(specs)}})
        return True

    def reload_if_changed(self) -> None:
        if self.path is not None and self._stat() != self._mtime:
            self.reload()
