"""The App's database side: where it connects, its two pools, and running operations.

A sync and an async pool, each opened on first use, so one App serves a web handler, a
script and a worker alike. ``run`` / ``run_sync`` drive one query-layer operation
(``pgq.db``) on a pooled connection or on the caller's, which is how every producer
and admin method reaches the database.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from typing import Any, Self, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from pgq import _db, _times, waiting
from pgq.db import driver
from pgq.embedded import embedded_dsn
from pgq.settings import Settings
from pgq.spare import Spare

T = TypeVar("T")


async def _configure_async(conn: psycopg.AsyncConnection[Any]) -> None:
    _times.make_total(conn)  # every reader reads every row (see pgq/_times.py)


def _configure(conn: psycopg.Connection[Any]) -> None:
    _times.make_total(conn)


class Connections:
    """The DSN comes from ``dsn=``, else ``DATABASE_URL``, else the embedded PostgreSQL.
    Connections are opened on first use (or by ``async with app``/``with app``)."""

    def __init__(self, dsn: str | None = None, *, settings: Settings | None = None, pool_max_size: int = 10) -> None:
        self.settings = settings or Settings.from_env()
        self._dsn = dsn or self.settings.database_url
        if self._dsn is not None:
            _db.validate_dsn(self._dsn)
        if self.settings.listen_url is not None:
            _db.validate_dsn(self.settings.listen_url, "PGQ_LISTEN_URL")
        self._pool_max_size = pool_max_size
        self._reach = _db.Reach()
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self._spare: Spare | None = None
        self._pool_lock: asyncio.Lock | None = None
        self._pool_loop: asyncio.AbstractEventLoop | None = None
        self._sync_pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._sync_lock = threading.Lock()

    @property
    def dsn(self) -> str:
        """The database this app uses; starts the embedded server if none was given."""
        if self._dsn is None:
            self._dsn = embedded_dsn(self.settings.data_dir)
        return self._dsn

    @property
    def listen_dsn(self) -> str:
        """Where LISTEN connects: PGQ_LISTEN_URL (a direct route past PgBouncer), else the DSN."""
        return self.settings.listen_url or self.dsn

    @property
    def _caller_prepare(self) -> bool | None:
        """On a caller's ``conn=``: PGQ_PREPARED_STATEMENTS=off keeps pgq's statements
        unprepared; otherwise the connection's own prepare_threshold decides."""
        return False if self.settings.prepared_statements == "off" else None

    def _pool_options(self, prepare: bool) -> dict[str, Any]:
        """What the sync and the async pool share: sizes, opened by the caller, connect arguments."""
        return {
            "min_size": 1,
            "max_size": self._pool_max_size,
            "open": False,
            "kwargs": _db.pool_kwargs(prepare, dsn=self.dsn),
            "timeout": _db.POOL_TIMEOUT,
        }

    async def open(self) -> None:
        """Connect, check the schema is migrated, and open the async pool."""
        loop = asyncio.get_running_loop()
        if self._pool_loop is not loop:
            # A pool belongs to the event loop that opened it; a script that calls
            # asyncio.run() twice gets a fresh one (the old loop and its sockets are gone).
            self._pool, self._spare, self._pool_loop, self._pool_lock = None, None, loop, asyncio.Lock()
        assert self._pool_lock is not None
        async with self._pool_lock:
            if self._pool is not None:
                return
            dsn = self.dsn
            prepare = await _db.open_checked_async(dsn, self.settings.prepared_statements)
            pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
                dsn, **self._pool_options(prepare), name="pgq-app", configure=_configure_async
            )
            await pool.open(wait=True, timeout=30)
            self._pool, self._spare = pool, Spare(pool)

    async def close(self) -> None:
        if self._pool is not None:
            pool, spare, self._pool, self._spare = self._pool, self._spare, None, None
            if spare is not None:
                await spare.close()
            await pool.close()
        self.close_sync()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def open_sync(self) -> None:
        with self._sync_lock:
            if self._sync_pool is not None:
                return
            dsn = self.dsn
            prepare = _db.open_checked(dsn, self.settings.prepared_statements)
            pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
                dsn, **self._pool_options(prepare), name="pgq-app-sync", configure=_configure
            )
            pool.open(wait=True, timeout=30)
            self._sync_pool = pool

    def close_sync(self) -> None:
        waiting.forget(self)  # the LISTEN connection of app.wait()
        with self._sync_lock:
            if self._sync_pool is not None:
                pool, self._sync_pool = self._sync_pool, None
                pool.close()

    def __enter__(self) -> Self:
        self.open_sync()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close_sync()

    async def run(self, op: driver.Op[T], conn: psycopg.AsyncConnection[Any] | None = None) -> T:
        """Run one query-layer operation (``pgq.db``) on the pool, or on the caller's ``conn``.

        Public so that the HTTP API and the dashboard read through the same layer as the
        App's own methods instead of reaching into private modules.
        """
        if conn is not None:
            if not isinstance(conn, psycopg.AsyncConnection):
                raise TypeError("conn= of an async method must be a psycopg.AsyncConnection; use the _sync method")
            return await driver.run_async(conn, op, prepare=self._caller_prepare)
        if self._pool is None or self._pool_loop is not asyncio.get_running_loop():
            await self.open()
        spare = self._spare
        assert spare is not None
        with self._reach as reach:
            # Not pool.connection(): a generator-based context manager and a no-op
            # commit per call (the pool's connections are autocommit and no operation
            # opens a transaction), and the spare skips the pool (pgq/spare.py).
            pooled = await spare.get(reach.timeout)
            try:
                result = await driver.run_async(pooled, op)
            except BaseException:
                await spare.put(pooled, ok=False)
                raise
            await spare.put(pooled, ok=True)
            return result

    def run_sync(self, op: driver.Op[T], conn: psycopg.Connection[Any] | None = None) -> T:
        """``run`` for sync code, on the sync pool or the caller's ``conn``."""
        if conn is not None:
            if not isinstance(conn, psycopg.Connection):
                raise TypeError("conn= of a _sync method must be a psycopg.Connection; use the async method")
            return driver.run_sync(conn, op, prepare=self._caller_prepare)
        if self._sync_pool is None:
            self.open_sync()
        assert self._sync_pool is not None
        with self._reach, self._sync_pool.connection(timeout=self._reach.timeout) as pooled:
            return driver.run_sync(pooled, op)
