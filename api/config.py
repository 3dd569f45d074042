"""The API's settings, read from the environment once, like pgq.Settings."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from typing import Literal, cast, get_args

from pgq._db import validate_dsn  # private: the same DSN check (and message) as DATABASE_URL
from pgq.errors import ConfigError

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_READ_MAX_LAG = 5.0

ReadFallback = Literal["primary", "fail"]


def _tokens(raw: str) -> frozenset[str]:
    return frozenset(t.strip() for t in raw.split(",") if t.strip())


@dataclasses.dataclass(frozen=True, slots=True)
class ApiSettings:
    """Who may call the API and how large a request body may be."""

    read_tokens: frozenset[str] = frozenset()
    """PGQ_API_READ_TOKENS: comma-separated bearer tokens that may read (GET endpoints)."""
    write_tokens: frozenset[str] = frozenset()
    """PGQ_API_WRITE_TOKENS: comma-separated bearer tokens that may read and write."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    """PGQ_API_MAX_BODY_BYTES: larger request bodies get 413."""
    read_url: str | None = None
    """PGQ_READ_DATABASE_URL: a streaming replica for the API's reads (list, get, stats,
    metrics, dashboard). Unset: every read goes to DATABASE_URL."""
    read_max_lag: float = DEFAULT_READ_MAX_LAG
    """PGQ_READ_MAX_LAG: seconds a replica may be behind before reads leave it."""
    read_fallback: ReadFallback = "primary"
    """PGQ_READ_FALLBACK: when the replica lags or is down, read from the primary, or fail (503)."""

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1:
            raise ConfigError(f"PGQ_API_MAX_BODY_BYTES must be a positive number of bytes, got {self.max_body_bytes}")
        if self.read_url is not None:
            validate_dsn(self.read_url, "PGQ_READ_DATABASE_URL")
        if not 0 < self.read_max_lag <= 86_400:
            raise ConfigError(f"PGQ_READ_MAX_LAG must be seconds between 0 and 86400, got {self.read_max_lag}")
        if self.read_fallback not in get_args(ReadFallback):
            raise ConfigError(f"PGQ_READ_FALLBACK must be 'primary' or 'fail', got {self.read_fallback!r}")

    @property
    def auth_enabled(self) -> bool:
        return bool(self.read_tokens or self.write_tokens)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        env = os.environ if environ is None else environ
        raw_limit = env.get("PGQ_API_MAX_BODY_BYTES", "").strip()
        try:
            limit = int(raw_limit) if raw_limit else DEFAULT_MAX_BODY_BYTES
        except ValueError:
            raise ConfigError(f"PGQ_API_MAX_BODY_BYTES must be a whole number of bytes, got {raw_limit!r}") from None
        raw_lag = env.get("PGQ_READ_MAX_LAG", "").strip()
        try:
            lag = float(raw_lag) if raw_lag else DEFAULT_READ_MAX_LAG
        except ValueError:
            raise ConfigError(f"PGQ_READ_MAX_LAG must be a number of seconds, got {raw_lag!r}") from None
        return cls(
            read_tokens=_tokens(env.get("PGQ_API_READ_TOKENS", "")),
            write_tokens=_tokens(env.get("PGQ_API_WRITE_TOKENS", "")),
            max_body_bytes=limit,
            read_url=env.get("PGQ_READ_DATABASE_URL", "").strip() or None,
            read_max_lag=lag,
            read_fallback=cast(ReadFallback, env.get("PGQ_READ_FALLBACK", "primary").strip().lower()),
        )


def is_loopback(host: str) -> bool:
    """True for localhost and 127.0.0.0/8 or ::1: only this machine can connect."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
