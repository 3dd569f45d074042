"""The API's settings, read from the environment once, like pgq.Settings."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping

from pgq.errors import ConfigError

DEFAULT_MAX_BODY_BYTES = 1024 * 1024


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

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1:
            raise ConfigError(f"PGQ_API_MAX_BODY_BYTES must be a positive number of bytes, got {self.max_body_bytes}")

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
        return cls(
            read_tokens=_tokens(env.get("PGQ_API_READ_TOKENS", "")),
            write_tokens=_tokens(env.get("PGQ_API_WRITE_TOKENS", "")),
            max_body_bytes=limit,
        )


def is_loopback(host: str) -> bool:
    """True for localhost and 127.0.0.0/8 or ::1: only this machine can connect."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
