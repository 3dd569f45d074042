"""Upkeep: pruning by retention, result TTL, live progress, and per-queue limits."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

import pgq
from pgq.worker.pruner import Pruner
from tests.faults import FAST
from tests.helpers import WorkerProcesses, count_rows, running_worker, wait_final, wait_until


@pytest.mark.anyio
async def test_pruning_deletes_exactly_the_final_jobs_older_than_their_retention(dsn: str) -> None:
    rows = [  # (state, finished hours ago, should survive)
        ("succeeded", 2, False),
        ("succeeded", 0.5, True),
        ("cancelled", 30, False),
        ("cancelled", 10, True),
        ("failed", 50, False),
        ("failed", 40, True),
    ]
    with psycopg.connect(dsn, autocommit=True) as conn:
        ids = [
            conn.execute(
                "INSERT INTO pgq.jobs (task, state, finished_at, result) VALUES "
                "('t', %s, now() - make_interval(secs => %s * 3600), CASE WHEN %s = 'succeeded' THEN '1'::jsonb END) "
                "RETURNING id",
                (state, hours, state),
            ).fetchone()[0]  # type: ignore[index]
            for state, hours, _ in rows
        ]
        # Live jobs, however old, are never pruned.
        conn.execute(
            "INSERT INTO pgq.jobs (task, state, created_at, run_at) VALUES "
            "('t', 'queued', now() - interval '90 days', now() - interval '90 days'), "
            "('t', 'scheduled', now() - interval '90 days', now() + interval '1 day')"
        )
    settings = pgq.Settings(
        retention_succeeded=3600, retention_cancelled=86_400, retention_failed=45 * 3600, result_ttl=60
    )
    async with AsyncConnectionPool(dsn, min_size=1, max_size=1, kwargs={"autocommit": True}) as pool:
        report = await Pruner(pool, settings).run_once()
    assert report.deleted == {"succeeded": 1, "cancelled": 1, "failed": 1}
    assert report.results_cleared == 1  # the surviving succeeded job is older than the result TTL
    with psycopg.connect(dsn) as conn:
        left = {r[0] for r in conn.execute("SELECT id FROM pgq.jobs WHERE finished_at IS NOT NULL").fetchall()}
    assert left == {i for i, (_, _, keep) in zip(ids, rows, strict=True) if keep}
    assert count_rows(dsn, "state IN ('queued', 'scheduled')") == 2
    assert count_rows(dsn, "result IS NOT NULL") == 0


def test_retention_settings_take_units_and_forever() -> None:
    settings = pgq.Settings.from_env(
        {"PGQ_RETENTION_SUCCEEDED": "12h", "PGQ_RETENTION_FAILED": "forever", "PGQ_RESULT_TTL": "90s"}
    )
    assert settings.retention_succeeded == 43_200 and settings.retention_failed is None
    assert settings.result_ttl == 90 and settings.retention_cancelled == 7 * 86_400
    with pytest.raises(pgq.ConfigError, match="PGQ_RETENTION_CANCELLED must be a duration"):
        pgq.Settings.from_env({"PGQ_RETENTION_CANCELLED": "a week"})


@pytest.mark.anyio
async def test_progress_is_visible_while_the_job_runs_and_the_latest_report_lands(dsn: str) -> None:
    app = pgq.App(dsn)
    release = asyncio.Event()
    sync_release = threading.Event()

    @app.task
    async def crunch() -> str:
        ctx = pgq.current_job()
        for i in range(1, 1001):  # a tight loop: the row is written a few times, not 1000
            await ctx.progress(i / 20, f"step {i}")
        await release.wait()
        return "done"

    @app.task
    def sync_crunch() -> str:
        pgq.current_job().progress_sync(42.5, "sync half way")
        sync_release.wait(20)
        return "done"

    async with app, running_worker(app):
        jobs = [await crunch.enqueue(), await sync_crunch.enqueue()]

        async def progress_of(job_id: int) -> Any:
            for _ in range(200):
                job = await app.get_job(job_id)
                if job.progress and job.progress["percent"] in (50.0, 42.5):
                    return job.progress
                await asyncio.sleep(0.02)
            raise AssertionError(f"no final progress on job {job_id}: {job.progress}")

        first, second = await progress_of(jobs[0].id), await progress_of(jobs[1].id)
        assert first["message"] == "step 1000" and dt.datetime.fromisoformat(first["at"])
        assert second == {**second, "percent": 42.5, "message": "sync half way"}
        assert [(await app.get_job(j.id)).state for j in jobs] == ["running", "running"]
        release.set()
        sync_release.set()
        done = await wait_final(app, [j.id for j in jobs])
    assert [j.state for j in done] == ["succeeded", "succeeded"]


@pytest.mark.anyio
async def test_bad_progress_is_a_clear_error_inside_the_task(dsn: str) -> None:
    app = pgq.App(dsn)

    @app.task(max_attempts=1)
    async def bad() -> None:
        await pgq.current_job().progress(150)

    async with app, running_worker(app):
        (done,) = await wait_final(app, [(await bad.enqueue()).id])
    assert done.state == "failed" and "between 0 and 100" in done.errors[0]["message"]


def _max_running_while_draining(dsn: str, total: int) -> int:
    peak = 0
    deadline = time.monotonic() + 60
    while count_rows(dsn, "state = 'succeeded'") < total:
        assert time.monotonic() < deadline, "jobs did not finish"
        peak = max(peak, count_rows(dsn, "state = 'running'"))
        time.sleep(0.01)
    return peak


@pytest.mark.slow
def test_concurrency_limit_2_holds_across_3_workers(dsn: str, start_worker: WorkerProcesses) -> None:
    with pgq.App(dsn) as app:
        limits = app.set_queue_limits_sync("default", max_running=2)
        assert limits == pgq.QueueLimits("default", max_running=2)
        app.enqueue_many_sync([{"task": "sleepy", "args": {"seconds": 0.3}} for _ in range(20)])
    for _ in range(3):
        start_worker("--concurrency", "10", env=FAST)
    assert _max_running_while_draining(dsn, 20) == 2


@pytest.mark.slow
def test_rate_limit_never_exceeds_n_starts_per_second(dsn: str, start_worker: WorkerProcesses) -> None:
    with pgq.App(dsn) as app:
        app.set_queue_limits_sync("default", rate_limit=5, rate_period=1)
        app.enqueue_many_sync([{"task": "noop"} for _ in range(16)])
    for _ in range(3):
        start_worker("--concurrency", "10", env=FAST)
    wait_until(lambda: count_rows(dsn, "state = 'succeeded'") == 16, 30, "16 succeeded")
    with psycopg.connect(dsn) as conn:
        starts = [r[0] for r in conn.execute("SELECT started_at FROM pgq.jobs ORDER BY started_at").fetchall()]
    # Sliding window: any 6 consecutive starts span at least a second.
    assert all(starts[i + 5] - starts[i] >= dt.timedelta(seconds=1) for i in range(len(starts) - 5))
    assert starts[-1] - starts[0] < dt.timedelta(seconds=6)  # and the limit does not starve the queue


def test_queue_limits_are_validated(dsn: str) -> None:
    with pgq.App(dsn) as app:
        with pytest.raises(ValueError, match="max_running must be an integer"):
            app.set_queue_limits_sync("default", max_running=0)
        with pytest.raises(ValueError, match="rate_limit and rate_period go together"):
            app.set_queue_limits_sync("default", rate_limit=5)
        with pytest.raises(ValueError, match="queue"):
            app.set_queue_limits_sync("bad queue", max_running=1)
        app.set_queue_limits_sync("default", max_running=3, rate_limit=10, rate_period=dt.timedelta(minutes=1))
        assert app.queue_limits_sync() == [pgq.QueueLimits("default", 3, 10, dt.timedelta(minutes=1))]
        app.set_queue_limits_sync("default")  # all None: no limits
        assert app.queue_limits_sync() == [pgq.QueueLimits("default")]


@pytest.mark.anyio
async def test_pruner_vacuums_the_table_itself_when_autovacuum_is_off(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO pgq.jobs (task, state, finished_at) "
            "SELECT 't', 'succeeded', now() - interval '2 days' FROM generate_series(1, 20000)"
        )
        autovacuum_off = conn.execute("SELECT current_setting('autovacuum') = 'off'").fetchone() == (True,)
    async with AsyncConnectionPool(dsn, min_size=1, max_size=1, kwargs={"autocommit": True}) as pool:
        pruned = await Pruner(pool, pgq.Settings()).run_once()
        assert pruned.deleted["succeeded"] == 20000
        async with pool.connection() as conn:
            await conn.execute("SELECT pg_stat_force_next_flush()")
        report = await Pruner(pool, pgq.Settings()).run_once()  # sees the dead rows now
    assert report.vacuumed is autovacuum_off
    if autovacuum_off:
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'jobs'").fetchone() == (
                1,
            )
