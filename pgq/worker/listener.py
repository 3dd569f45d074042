"""The LISTEN side of the worker: one connection turning NOTIFYs into calls.

New work (channel pgq_jobs, payload a queue) wakes the worker; a cancel request
(pgq_cancel, payload a job id) reaches the job. When nothing arrives for a while the
listener notifies itself and expects its own ping back: a connection that silently
stopped delivering (a half-open TCP link, a proxy) is caught that way too. When the
connection is broken the worker keeps working by polling; this loop says so once,
reconnects with tenacity backoff, and wakes the worker in case something was missed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection

import psycopg
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential, wait_random

from pgq import _db
from pgq._queries import QUERIES

log = logging.getLogger("pgq.worker")

_ERRORS = (psycopg.OperationalError, OSError, TimeoutError)


class ListenerBroken(Exception):
    """The connection no longer delivers notifications."""


class Listener:
    def __init__(
        self,
        dsn: str,
        queues: Collection[str],
        wake: Callable[[], None],
        cancel: Callable[[int], None],
        poll_interval: float,
        health_interval: float = 30.0,
    ) -> None:
        self.dsn = dsn
        self.queues = frozenset(queues)
        self.wake = wake
        self.cancel = cancel
        self.poll_interval = poll_interval
        self.health_interval = health_interval
        self._said_broken = False

    def _broken(self, reason: object) -> None:
        if not self._said_broken:
            self._said_broken = True
            log.warning("LISTEN is not working (%s); polling every %s s until it is back", reason, self.poll_interval)

    async def run(self) -> None:
        """Listen until cancelled; a lost connection is reconnected with backoff."""
        while True:
            conn = await self._connect()
            try:
                await self._listen(conn)
            except _ERRORS as exc:
                self._broken(_db.unavailable(self.dsn, exc))
            except ListenerBroken as exc:
                self._broken(exc)
            finally:
                await conn.close()

    async def _listen(self, conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
        own_ping = str(conn.info.backend_pid)
        while True:
            heard = False
            async for notify in conn.notifies(timeout=self.health_interval):
                heard = True
                self._dispatch(notify)
            if heard:
                continue
            # Quiet for a while: prove the line still delivers before trusting it.
            await asyncio.wait_for(conn.execute(QUERIES["listener_ping"]), self.poll_interval + 5)
            async for notify in conn.notifies(timeout=self.poll_interval + 5):
                if notify.channel == "pgq_ping" and notify.payload == own_ping:
                    break
                self._dispatch(notify)
            else:
                raise ListenerBroken("the listener's own ping did not come back")

    def _dispatch(self, notify: psycopg.Notify) -> None:
        if notify.channel == "pgq_jobs":
            if notify.payload in self.queues:
                self.wake()
        elif notify.channel == "pgq_cancel":
            try:
                job_id = int(notify.payload)
            except ValueError:
                log.warning("ignoring a pgq_cancel notification with payload %r (not a job id)", notify.payload)
                return
            self.cancel(job_id)

    async def _connect(self) -> psycopg.AsyncConnection[tuple[object, ...]]:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(_ERRORS),
            wait=wait_exponential(multiplier=0.2, max=10) + wait_random(0, 0.5),
            before_sleep=lambda state: self._broken(
                _db.unavailable(self.dsn, state.outcome.exception() or OSError()) if state.outcome else "no connection"
            ),
        ):
            with attempt:
                conn = await psycopg.AsyncConnection.connect(
                    self.dsn, autocommit=True, connect_timeout=10, application_name="pgq-listener"
                )
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
