"""The LISTEN side of wake-up: one connection that turns NOTIFYs into a wake call.

When the connection breaks, the worker keeps working by polling; this loop says so
once, reconnects with tenacity backoff, and wakes the worker after reconnecting in case
a notification was missed meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection

import psycopg
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential, wait_random

from pgq import _db
from pgq._queries import QUERIES

log = logging.getLogger("pgq.worker")


class Listener:
    def __init__(self, dsn: str, queues: Collection[str], wake: Callable[[], None], poll_interval: float) -> None:
        self.dsn = dsn
        self.queues = frozenset(queues)
        self.wake = wake
        self.poll_interval = poll_interval
        self._said_broken = False

    def _broken(self, exc: BaseException | None) -> None:
        if not self._said_broken:
            self._said_broken = True
            log.warning(
                "LISTEN is not working (%s); polling every %s s until it is back",
                _db.unavailable(self.dsn, exc) if exc else "no connection",
                self.poll_interval,
            )

    async def run(self) -> None:
        """Listen until cancelled; a lost connection is reconnected with backoff."""
        while True:
            conn = await self._connect()
            try:
                async for notify in conn.notifies():
                    if notify.payload in self.queues:
                        self.wake()
            except (psycopg.OperationalError, OSError) as exc:
                self._broken(exc)
            finally:
                await conn.close()

    async def _connect(self) -> psycopg.AsyncConnection[tuple[object, ...]]:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type((psycopg.OperationalError, OSError)),
            wait=wait_exponential(multiplier=0.2, max=10) + wait_random(0, 0.5),
            before_sleep=lambda state: self._broken(state.outcome.exception() if state.outcome else None),
        ):
            with attempt:
                conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True, connect_timeout=10)
                try:
                    await conn.execute(QUERIES["worker_listen"])
                except BaseException:
                    await conn.close()
                    raise
        if self._said_broken:
            self._said_broken = False
            log.warning("LISTEN connection restored; back to instant wake-ups")
            self.wake()  # a notification may have been missed meanwhile
        return conn
