"""One connection an App keeps in hand between its calls, in front of its async pool.

A call that finds the spare free runs on it without going through the pool: taking a
connection from psycopg_pool and giving it back cost as many client instructions as the
rest of an ``enqueue`` besides the INSERT itself (43k of 439k per call, measured with
callgrind). The pool still owns the connection and does everything else:

- a connection that failed (any exception), or whose session is not idle, goes back to
  the pool, which resets or replaces it, and the next call takes a fresh one;
- the spare goes back to the pool every ``HOLD_SECONDS`` so that the pool's lifetime
  and idle rules apply to it as to the others;
- while any caller waits for a connection, a returning one goes to the pool, so the
  spare never starves a waiter; a pool of one connection keeps no spare at all.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool

HOLD_SECONDS = 10.0

_IDLE = TransactionStatus.IDLE


class Spare:
    def __init__(self, pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]]) -> None:
        self._pool = pool
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._held: psycopg.AsyncConnection[Any] | None = None
        """The connection that has been the spare since ``_until`` less HOLD_SECONDS."""
        self._until = 0.0
        self._enabled = pool.max_size > 1

    async def get(self, timeout: float) -> psycopg.AsyncConnection[Any]:  # noqa: ASYNC109 (the pool's wait)
        conn = self._conn
        if conn is None:
            return await self._pool.getconn(timeout)
        self._conn = None
        return conn

    async def put(self, conn: psycopg.AsyncConnection[Any], ok: bool) -> None:
        """Keep ``conn`` as the spare if it may serve the next call, else give it back."""
        if (
            ok
            and self._enabled
            and self._conn is None
            and conn.pgconn.transaction_status == _IDLE
            and not self._someone_waits()
        ):
            now = time.monotonic()
            if conn is not self._held:
                self._held, self._until = conn, now + HOLD_SECONDS
            if now < self._until:
                self._conn = conn
                return
        if conn is self._held:
            self._held = None
        await self._pool.putconn(conn)

    def _someone_waits(self) -> bool:
        # psycopg_pool has no public, cheap way to ask; without the attribute (another
        # release), keep no spare rather than risk starving a waiter.
        return bool(getattr(self._pool, "_waiting", True))

    async def close(self) -> None:
        """Give the spare back (before the pool closes); a call still running gives its
        connection back to the pool too, which closes it once the pool is closed."""
        self._enabled = False
        conn, self._conn, self._held = self._conn, None, None
        if conn is not None:
            await self._pool.putconn(conn)
