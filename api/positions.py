"""Read-your-writes across a replica: the WAL position a client's last write reached.

Every write answer carries ``Pgq-Wal-Lsn`` (the primary's WAL end after the write, as
PostgreSQL prints an LSN, ``16/B374D848``) and sets the ``pgq_wal_lsn`` cookie to the
same position (as a decimal byte count: a cookie value cannot hold "/" unquoted), for
browsers and the dashboard. A read that sends either back is served
from the replica only once the replica has replayed that far, else from the primary.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response

from pgq.api.errors import ApiError

HEADER = "Pgq-Wal-Lsn"
COOKIE = "pgq_wal_lsn"
SOURCE_HEADER = "Pgq-Read-Source"
"""On every read the router served: ``replica`` or ``primary``."""

_LSN = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")
COOKIE_SECONDS = 300
"""A write's position matters until the replica has replayed it; minutes at most."""


def format_lsn(position: int) -> str:
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int | None:
    match = _LSN.match(text.strip())
    return None if match is None else (int(match[1], 16) << 32) | int(match[2], 16)


def requested(request: Request) -> int | None:
    """The position the client must read at, from the header (or else the cookie).

    A malformed header is a 400 naming it; a malformed cookie is ignored (a browser
    cannot be asked to fix its cookies).
    """
    header = request.headers.get(HEADER)
    if header is not None:
        position = parse_lsn(header)
        if position is None:
            raise ApiError(
                400,
                f"{HEADER} must be a WAL position like 16/B374D848, as a write's answer gave it",
                code="invalid_header",
                details={"header": HEADER},
            )
        return position
    cookie = request.cookies.get(COOKIE, "")
    return int(cookie) if cookie.isascii() and cookie.isdigit() and len(cookie) <= 20 else None


def remember(response: Response, position: int) -> None:
    """Tell the client where its write ended: header for API clients, cookie for browsers."""
    response.headers[HEADER] = format_lsn(position)
    response.set_cookie(COOKIE, str(position), max_age=COOKIE_SECONDS, httponly=True, samesite="lax")
