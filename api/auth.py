"""Bearer tokens with a read and a write scope, compared in constant time.

A write token can also read. With no tokens configured every request is allowed:
``pgq api`` then serves on a loopback address only (see api/serve.py).

A browser cannot send a bearer header from a page or an EventSource, so the dashboard
keeps the token in an HttpOnly, SameSite=Strict cookie (api/ui/session.py). The cookie
authenticates reads anywhere (the pages, the JSON reads, the event streams) but never a
write through the JSON API: the dashboard's own actions check it together with a CSRF
token, and a forged cross-site request cannot carry both.
"""

from __future__ import annotations

import enum
import functools
import hmac
from collections.abc import Awaitable, Callable, Iterable

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from pgq.api.config import ApiSettings
from pgq.api.errors import ApiError

Endpoint = Callable[[Request], Awaitable[Response]]


class Scope(enum.StrEnum):
    READ = "read"
    WRITE = "write"


def _matches(given: bytes, tokens: Iterable[bytes]) -> bool:
    # Compare against every token (no early exit) so timing says nothing about which matched.
    found = False
    for token in tokens:
        found |= hmac.compare_digest(given, token)
    return found


TOKEN_COOKIE = "pgq_token"  # noqa: S105 - a cookie name, not a secret
"""The dashboard's session cookie: the token itself, HttpOnly and SameSite=Strict."""


class Auth:
    def __init__(self, settings: ApiSettings) -> None:
        self.enabled = settings.auth_enabled
        self._write = [t.encode() for t in sorted(settings.write_tokens)]
        self._read = [t.encode() for t in sorted(settings.read_tokens)] + self._write

    def scope_of(self, token: str) -> Scope | None:
        """The scope a token grants (WRITE for everyone when no tokens are configured)."""
        if not self.enabled:
            return Scope.WRITE
        given = token.encode()
        if _matches(given, self._write):
            return Scope.WRITE
        return Scope.READ if _matches(given, self._read) else None

    def check(self, request: HTTPConnection, scope: Scope) -> None:
        """Raise 401 without a valid token, 403 when the token's scope is too small (also for a WebSocket handshake)."""
        if not self.enabled:
            return
        header = request.headers.get("authorization")
        cookie = request.cookies.get(TOKEN_COOKIE)
        if header is None and cookie and scope is Scope.READ:
            header = f"Bearer {cookie}"
        scheme, _, token = (header or "").partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="pgq"'}
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "missing bearer token: send 'Authorization: Bearer <token>'", headers=challenge)
        given = token.strip().encode()
        if not _matches(given, self._read):
            raise ApiError(401, "invalid bearer token", headers=challenge)
        if scope is Scope.WRITE and not _matches(given, self._write):
            raise ApiError(403, "this token may only read; writing needs a token from PGQ_API_WRITE_TOKENS")

    def require(self, scope: Scope) -> Callable[[Endpoint], Endpoint]:
        """Decorate an endpoint so it runs only for a token with ``scope``."""

        def decorate(endpoint: Endpoint) -> Endpoint:
            @functools.wraps(endpoint)
            async def guarded(request: Request) -> Response:
                self.check(request, scope)
                return await endpoint(request)

            return guarded

        return decorate
