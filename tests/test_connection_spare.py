"""The App's spare connection (pgq/spare.py): calls in a row skip the pool, without
starving anyone who waits for a connection and without outliving the App."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Generator
from typing import Any

import psycopg
import pytest

import pgq
from pgq import spare
from pgq.db.driver import Row
from tests.helpers import wait_until

pytestmark = pytest.mark.anyio


def _sleep(seconds: float) -> Generator[tuple[str, dict[str, Any]], list[Row], None]:
    """An operation that holds its connection for ``seconds``."""
    yield "SELECT pg_sleep(%(s)s)", {"s": seconds}


def _backends(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert row is not None
    return int(row[0])


def _pool_requests(app: pgq.App) -> int:
    assert app._pool is not None
    return int(app._pool.get_stats().get("requests_num", 0))


async def test_calls_in_a_row_take_one_connection_from_the_pool(dsn: str) -> None:
    async with pgq.App(dsn) as app:
        before = _pool_requests(app)
        for _ in range(50):
            await app.enqueue("t")
        assert _pool_requests(app) - before == 1


async def test_the_spare_goes_back_to_the_pool_after_its_hold_time(dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spare, "HOLD_SECONDS", 0.0)
    async with pgq.App(dsn) as app:
        before = _pool_requests(app)
        for _ in range(20):
            await app.enqueue("t")
        assert _pool_requests(app) - before == 20


async def test_a_caller_waiting_for_a_connection_is_not_starved_by_the_spare(dsn: str) -> None:
    """Two connections: one held by a slow call, one cycled by a busy loop of enqueues.
    A third caller must get the busy loop's connection between two of its calls."""
    async with pgq.App(dsn, pool_max_size=2) as app:
        slow = asyncio.create_task(app.run(_sleep(3.0)))
        stop = asyncio.Event()

        async def busy() -> None:
            while not stop.is_set():
                await app.enqueue("t")

        loop = asyncio.create_task(busy())
        await asyncio.sleep(0.3)
        start = time.monotonic()
        await app.enqueue("t")
        waited = time.monotonic() - start
        stop.set()
        await loop
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
    assert waited < 1.0


async def test_a_failed_call_gives_its_connection_back_and_the_next_call_works(dsn: str) -> None:
    async with pgq.App(dsn) as app:
        await app.enqueue("t")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        with pytest.raises(psycopg.OperationalError):
            await app.enqueue("t")
        job = await app.enqueue("t")
        assert (await app.get_job(job.id)).state == "queued"


async def test_closing_the_app_closes_the_spare(dsn: str) -> None:
    app = pgq.App(dsn)
    async with app:
        for _ in range(5):
            await app.enqueue("t")
    await asyncio.to_thread(wait_until, lambda: _backends(dsn) == 0, 5, "the App's backends to exit")


async def test_a_call_that_ends_after_the_app_closed_does_not_keep_its_connection(dsn: str) -> None:
    app = pgq.App(dsn)
    await app.open()
    running = asyncio.create_task(app.run(_sleep(0.5)))
    await asyncio.sleep(0.1)
    await app.close()
    await running
    await asyncio.to_thread(wait_until, lambda: _backends(dsn) == 0, 5, "the App's backends to exit")
