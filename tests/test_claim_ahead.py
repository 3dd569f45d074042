"""Claiming ahead: a worker of short jobs claims more than its free slots (the extra
wait for a slot), a worker of slow jobs never does, and jobs claimed ahead go back to
the queue untouched when the worker stops."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

import pgq
from tests.helpers import count_rows, running_worker, wait_until

pytestmark = pytest.mark.anyio


def _largest_claim(dsn: str) -> int:
    """Jobs claimed by one statement share its now() as started_at."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT coalesce(max(n), 0) FROM "
            "(SELECT count(*) AS n FROM pgq.jobs WHERE started_at IS NOT NULL GROUP BY started_at) AS c"
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_short_jobs_are_claimed_ahead_of_free_slots_and_all_run_once(dsn: str) -> None:
    app = pgq.App(dsn)
    runs: list[int] = []

    @app.task
    async def quick(n: int) -> None:
        runs.append(n)

    async with app, running_worker(app, concurrency=5):
        await app.enqueue_many([{"task": "quick", "args": {"n": n}} for n in range(2000)])
        await asyncio.to_thread(wait_until, lambda: count_rows(dsn, "state = 'succeeded'") == 2000, 30, "drained")
    assert sorted(runs) == list(range(2000))
    assert count_rows(dsn, "attempt <> 1") == 0
    assert _largest_claim(dsn) > 5  # more than the free slots in one claim


async def test_slow_jobs_are_never_claimed_ahead(dsn: str) -> None:
    app = pgq.App(dsn)

    @app.task
    async def slow() -> None:
        await asyncio.sleep(0.15)

    async with app, running_worker(app, concurrency=2):
        await app.enqueue_many([{"task": "slow"}] * 10)
        await asyncio.to_thread(wait_until, lambda: count_rows(dsn, "state = 'succeeded'") == 10, 20, "10 done")
    assert _largest_claim(dsn) <= 2


async def test_jobs_claimed_ahead_of_stuck_slots_go_back_to_the_queue_uncounted(dsn: str) -> None:
    app = pgq.App(dsn)
    gate = asyncio.Event()
    started: list[int] = []

    @app.task
    async def step(n: int) -> None:
        started.append(n)
        if n >= 100:
            await gate.wait()  # the slots fill with these; jobs claimed after them wait

    async with app:
        async with running_worker(app, concurrency=4, shutdown_timeout=0.5):
            await app.enqueue_many([{"task": "step", "args": {"n": n}} for n in range(300)])
            # Claimed ahead while the four slots are stuck: handed back within 0.1 s,
            # and not claimed ahead again while they stay stuck.
            await asyncio.to_thread(wait_until, lambda: len(started) >= 104, 20, "four slots stuck")
            await asyncio.to_thread(wait_until, lambda: count_rows(dsn, "state = 'running'") == 4, 5, "handed back")
            await asyncio.sleep(0.3)
            assert count_rows(dsn, "state = 'running'") == 4
        gate.set()
    assert _largest_claim(dsn) > 4  # the quick jobs were claimed ahead
    succeeded = count_rows(dsn, "state = 'succeeded'")
    assert count_rows(dsn, "state = 'running'") == 0
    assert count_rows(dsn, "state = 'queued' AND attempt = 0 AND started_at IS NULL") == 300 - succeeded
    assert len(started) == succeeded + 4  # the four stuck ones were handed back at shutdown
