"""Everything pgq does, through PgBouncer in transaction mode, with LISTEN on a direct route.

The App and the worker get ``bouncer_dsn``; PGQ_LISTEN_URL is the direct ``dsn``.
Default settings otherwise: prepared statements are turned off by ``auto``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

import psycopg
import pytest

import pgq
from pgq.settings import Settings
from tests.helpers import running_worker, wait_final

pytestmark = pytest.mark.anyio


def _app(bouncer_dsn: str, listen_url: str | None, **settings: object) -> pgq.App:
    app = pgq.App(bouncer_dsn, settings=dataclasses.replace(Settings(), listen_url=listen_url, **settings))  # type: ignore[arg-type]
    running = {"now": 0, "most": 0}

    @app.task
    async def noop(n: int = 0) -> int:
        return n

    @app.task(retry=0.05, max_attempts=3)
    async def flaky() -> int:
        attempt = pgq.current_job().attempt
        if attempt < 2:
            raise RuntimeError("first attempt fails")
        return attempt

    @app.task(queue="limited")
    async def one_at_a_time() -> None:
        running["now"] += 1
        running["most"] = max(running["most"], running["now"])
        await asyncio.sleep(0.05)
        running["now"] -= 1

    app.running = running  # type: ignore[attr-defined]
    return app


FAST = {"heartbeat_interval": 0.2, "rescue_after": 1.0, "maintenance_interval": 0.2}


async def test_jobs_run_through_pgbouncer_woken_by_a_direct_listen(bouncer_dsn: str, dsn: str) -> None:
    app = _app(bouncer_dsn, listen_url=dsn)
    async with app, running_worker(app, poll_interval=30, concurrency=8, **FAST) as worker:
        await asyncio.sleep(0.5)  # the listener is connected
        bulk = await app.enqueue_many([{"task": "noop", "args": {"n": i}} for i in range(300)])
        one = await app.enqueue("noop", {"n": -1})
        flaky = await app.enqueue("flaky")
        started = time.monotonic()
        done = await wait_final(app, [j.id for j in [*bulk, one, flaky]], timeout=30)
        assert time.monotonic() - started < 20  # woken by NOTIFY: the poll interval is 30 s
        workers = await app.list_workers()
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            lease = await (await conn.execute("SELECT worker_id FROM pgq.leases WHERE name = 'maintenance'")).fetchone()
    assert [j.result for j in done[:300]] == list(range(300))
    assert done[300].state is pgq.JobState.SUCCEEDED and done[300].result == -1
    assert done[301].state is pgq.JobState.SUCCEEDED and done[301].attempt == 2
    assert [w.id for w in workers] == [worker.id]  # registered and heartbeating through PgBouncer
    assert lease == (worker.id,)  # the leader's lease is a row, not a session lock


async def test_enqueue_in_the_callers_transaction_through_pgbouncer(bouncer_dsn: str) -> None:
    app = _app(bouncer_dsn, listen_url=None)
    async with app:
        async with await psycopg.AsyncConnection.connect(bouncer_dsn, prepare_threshold=None) as conn:
            async with conn.transaction():
                kept = await app.enqueue("noop", conn=conn)
                await app.enqueue_many([{"task": "noop"}] * 3, conn=conn)
            with pytest.raises(RuntimeError):
                async with conn.transaction():
                    dropped = await app.enqueue("noop", conn=conn)
                    raise RuntimeError("the caller rolls back")
        assert (await app.get_job(kept.id)).state is pgq.JobState.QUEUED
        with pytest.raises(pgq.JobNotFoundError):
            await app.get_job(dropped.id)
        assert sum(s.counts.get("queued", 0) for s in await app.queue_stats()) == 4


def test_enqueue_on_a_callers_default_connection_with_prepared_statements_off(bouncer_dsn: str) -> None:
    """A caller's connection that still prepares after five uses: PGQ_PREPARED_STATEMENTS=off
    keeps pgq's own statements on it unprepared, while its server connection changes."""
    app = _app(bouncer_dsn, listen_url=None, prepared_statements="off")
    with app, psycopg.connect(bouncer_dsn) as conn:
        for _ in range(8):
            with conn.transaction():
                app.enqueue_sync("noop", conn=conn)
        with psycopg.connect(bouncer_dsn) as other:
            other.execute("SELECT 1")  # holds the server connection the caller used so far
            with conn.transaction():
                job = app.enqueue_sync("noop", conn=conn)
        assert app.get_job_sync(job.id).state is pgq.JobState.QUEUED


async def test_rescue_schedules_limits_and_retry_through_pgbouncer(bouncer_dsn: str, dsn: str) -> None:
    app = _app(bouncer_dsn, listen_url=dsn)
    app.schedule("noop", every=1, name="every-second")
    async with app:
        await app.set_queue_limits("limited", max_running=1)
        limited = await app.enqueue_many([{"task": "one_at_a_time"}] * 20)
        stranded = await app.enqueue("noop", {"n": 5})
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await conn.execute(
                "UPDATE pgq.jobs SET state = 'running', attempt = 1, worker_id = 'gone:1:dead',"
                " started_at = now() - interval '1 hour', heartbeat_at = now() - interval '1 hour' WHERE id = %s",
                (stranded.id,),
            )
        later = await app.enqueue_many([{"task": "noop", "delay": 3600}] * 10)
        async with running_worker(app, concurrency=8, **FAST):
            rescued, *rest = await wait_final(app, [stranded.id, *(j.id for j in limited)], timeout=30)
            await asyncio.sleep(1.6)
            for job in later:  # cancel and retry, again and again: no other client's statement runs
                assert (await app.cancel(job.id)).state is pgq.JobState.CANCELLED
                assert (await app.retry(job.id)).state is pgq.JobState.QUEUED
            retried = await wait_final(app, [j.id for j in later])
            schedules = await app.list_schedules()
    assert rescued.state is pgq.JobState.SUCCEEDED and rescued.attempt == 2
    assert rescued.errors[0]["type"] == "WorkerLost"
    assert all(j.state is pgq.JobState.SUCCEEDED for j in [*rest, *retried])
    assert app.running["most"] == 1  # type: ignore[attr-defined]
    (schedule,) = schedules
    assert schedule.last_job_id is not None  # the leader enqueued it through PgBouncer
