"""One LISTEN session kept alive: the worker's wake-ups and the API's job events share it.

LISTEN needs a session of its own, so this connection goes to ``listen_url`` (a direct
route to PostgreSQL) when DATABASE_URL points at PgBouncer in transaction mode, where a
LISTEN would land on whichever server connection the pooler lends and be lost.

The client reconnects with tenacity backoff, logs once when LISTEN stops working and
once when it is back (not once per attempt), and calls ``on_connect`` after every
(re)connect so the user can catch up on what it may have missed. When nothing arrives
for ``health_interval`` seconds it notifies itself (pgq_ping, payload its backend pid)
from another session and expects that ping back: a half-open TCP link or a proxy that drops notifications
is caught that way too, not only a connection that reports an error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import LiteralString

import psycopg
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential, wait_random

from pgq import _db
from pgq._queries import QUERIES
from pgq.errors import DatabaseUnavailableError

_ERRORS = (psycopg.OperationalError, OSError, TimeoutError, DatabaseUnavailableError)
PING_CHANNEL = "pgq_ping"


class ListenBroken(Exception):
    """The connection no longer delivers notifications."""


class ListenThroughPooler(Exception):
    """LISTEN was asked of a connection pooler, which would lose the notifications."""


class ListenClient:
    """Keeps one LISTEN connection and hands every notification to ``on_notify``.

    ``listen_query`` is a named query that LISTENs on the user's channels and on
    pgq_ping. ``fallback`` says in the outage warning what happens meanwhile.
    """

    def __init__(
        self,
        dsn: Callable[[], str],
        listen_query: LiteralString,
        on_notify: Callable[[psycopg.Notify], None],
        *,
        log: logging.Logger,
        fallback: str,
        application_name: str,
        on_connect: Callable[[], None] | None = None,
        on_disconnect: Callable[[], None] | None = None,
        health_interval: float = 30.0,
        ping_timeout: float = 10.0,
        allow_pooler: bool = False,
    ) -> None:
        self._dsn = dsn
        self._listen_query = listen_query
        self._on_notify = on_notify
        self._log = log
        self._fallback = fallback
        self._application_name = application_name
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self.health_interval = health_interval
        self.ping_timeout = ping_timeout
        self._allow_pooler = allow_pooler
        self._said_broken = False
        self.connected = asyncio.Event()
        """Set while LISTEN is active."""
        self.refused: str | None = None
        """Why LISTEN was not even tried (a transaction pooler in the way); then run() returns."""

    def _reason(self, exc: BaseException | None) -> object:
        if isinstance(exc, DatabaseUnavailableError):
            return exc  # already says where, without a password
        return _db.unavailable(self._dsn(), exc or OSError())

    def _broken(self, reason: object) -> None:
        if not self._said_broken:
            self._said_broken = True
            self._log.warning("LISTEN is not working (%s); %s", reason, self._fallback)

    async def run(self) -> None:
        """Listen until cancelled; a lost connection is reconnected with backoff.

        Returns only when LISTEN was refused (``refused`` says why, logged once).
        """
        while True:
            try:
                conn = await self._connect()
            except ListenThroughPooler as exc:
                self.refused = str(exc)
                self._log.error("LISTEN is off: %s", exc)
                return
            try:
                self.connected.set()
                if self._on_connect is not None:
                    self._on_connect()
                await self._listen(conn)
            except _ERRORS as exc:
                self._broken(self._reason(exc))
            except ListenBroken as exc:
                self._broken(exc)
            finally:
                self.connected.clear()
                if self._on_disconnect is not None:
                    self._on_disconnect()
                await conn.close()

    async def _listen(self, conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
        own_ping = str(conn.info.backend_pid)
        loop = asyncio.get_running_loop()
        last_heard = loop.time()
        while True:
            # The silence is counted from the last notification (or ping) heard, so a
            # link that goes quiet is questioned health_interval later, not up to twice that.
            quiet_for = self.health_interval - (loop.time() - last_heard)
            if quiet_for > 0:
                async for notify in conn.notifies(timeout=quiet_for):
                    last_heard = loop.time()
                    self._deliver(notify)
                continue
            # Quiet for a while: prove the line still delivers before trusting it.
            await asyncio.wait_for(self._ping(own_ping), self.ping_timeout)
            async for notify in conn.notifies(timeout=self.ping_timeout):
                if notify.channel == PING_CHANNEL and notify.payload == own_ping:
                    break
                self._deliver(notify)
            else:
                raise ListenBroken("its own ping did not come back")
            last_heard = loop.time()

    async def _ping(self, payload: str) -> None:
        """Notify from a session of its own, as a producer would. Not from the listening
        connection: on a silent link its query would hang, and cancelling it takes seconds."""
        async with await _db.connect_async(self._dsn(), application_name=self._application_name) as conn:
            await conn.execute(QUERIES["listener_ping"], {"pid": payload})

    def _deliver(self, notify: psycopg.Notify) -> None:
        if notify.channel != PING_CHANNEL:
            self._on_notify(notify)

    async def _connect(self) -> psycopg.AsyncConnection[tuple[object, ...]]:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(_ERRORS),
            wait=wait_exponential(multiplier=0.2, max=10) + wait_random(0, 0.5),
            before_sleep=lambda state: self._broken(
                self._reason(state.outcome.exception()) if state.outcome else "no connection"
            ),
        ):
            with attempt:
                conn = await _db.connect_async(self._dsn(), application_name=self._application_name)
                try:
                    # Checked before LISTEN: a LISTEN through a transaction pooler would stay
                    # on a pooled server connection and hand notifications to other clients.
                    if not self._allow_pooler and await _db.is_pooled_async(conn):
                        raise ListenThroughPooler(
                            f"{_db.redact(self._dsn())} goes through a connection pooler, where LISTEN "
                            "loses notifications: set PGQ_LISTEN_URL (--listen-url) to a direct connection"
                        )
                    await conn.execute(self._listen_query)
                except BaseException:
                    await conn.close()
                    raise
        if self._said_broken:
            self._said_broken = False
            self._log.warning("LISTEN connection restored")
        return conn
