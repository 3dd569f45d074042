"""What a worker needs before its first claim: its settings (the app's, with the
worker's own keyword arguments on top), a connection pool to a migrated database, and
the event loop it runs on."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool

from pgq import _db
from pgq.app import App
from pgq.errors import ConfigError
from pgq.settings import EventLoop, Settings

T = TypeVar("T")


def worker_settings(app: App, *, queues: Sequence[str] | None = None, **given: Any) -> Settings:
    """Validated settings for a worker of ``app``; a keyword left None keeps the app's value."""
    if not app.tasks:
        raise ConfigError("the app has no tasks registered: a worker for it could only fail jobs")
    base = app.settings
    return dataclasses.replace(
        base,
        queues=tuple(queues) if queues else (base.queues or app.task_queues()),
        **{name: value for name, value in given.items() if value is not None},
    )  # replace() runs Settings validation on the merged values


async def open_pool(dsn: str, settings: Settings) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
    """Check the schema revision first (a clear error beats failing claims), then open
    the worker's pool (the slots, plus the completer and the heartbeat), preparing
    statements only where that works (not through a transaction-mode pooler)."""
    prepare = await _db.open_checked_async(dsn, settings.prepared_statements)
    pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
        dsn,
        min_size=1,
        max_size=settings.pool_size or min(settings.concurrency + 2, 10),
        open=False,
        kwargs=_db.pool_kwargs(prepare, "pgq-worker", dsn=dsn),
        timeout=_db.POOL_TIMEOUT,
        name="pgq-worker",
    )
    await pool.open(wait=True, timeout=30)
    return pool


def run(main: Coroutine[Any, Any, T], event_loop: EventLoop = "asyncio") -> T:
    """``asyncio.run(main)``, or the same on uvloop's event loop (PGQ_EVENT_LOOP=uvloop):
    about 7 % less of the worker's CPU per no-op job, measured (benchmarks/README.md)."""
    if event_loop == "asyncio":
        return asyncio.run(main)
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        main.close()
        raise ConfigError("PGQ_EVENT_LOOP=uvloop needs uvloop: pip install 'pgq-queue[uvloop]'") from None
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
