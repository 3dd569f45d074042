"""Lost connections, a restarted PostgreSQL, a dead LISTEN, a small pool."""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any

import psycopg
import pytest

import pgq
from pgq.migrate import migrate
from tests.faults import FAST
from tests.helpers import WorkerProcesses, count_rows, read_runs, running_worker, wait_final, wait_until

pytestmark = pytest.mark.slow


def _terminate(dsn: str, application_name: str) -> int:
    """pg_terminate_backend every connection with this application_name; how many."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = %s",
            (application_name,),
        ).fetchall()
    return len(rows)


def test_killed_connections_are_reconnected_and_every_job_finishes_once(
    dsn: str, start_worker: WorkerProcesses
) -> None:
    with pgq.App(dsn) as app:
        app.enqueue_many_sync([{"task": "sleepy", "args": {"seconds": 0.2}} for _ in range(200)])
    start_worker("--concurrency", "10", env=FAST)
    for _ in range(5):
        wait_until(lambda: count_rows(dsn, "state = 'running'") > 0, 20, "jobs running")
        assert _terminate(dsn, "pgq-worker") + _terminate(dsn, "pgq-listener") > 0
        time.sleep(0.5)
    wait_until(lambda: count_rows(dsn, "state = 'succeeded'") == 200, 60, "200 succeeded")
    runs = collections.Counter(read_runs(start_worker.run_log))
    assert len(runs) == 200 and max(runs.values()) == 1  # a completion is retried, never the job
    log = start_worker.all_logs()
    assert "database unreachable while" in log and "database reachable again" in log


def test_dead_listen_connection_does_not_delay_jobs_past_the_poll_interval(
    dsn: str, start_worker: WorkerProcesses
) -> None:
    start_worker(env={**FAST, "PGQ_POLL_INTERVAL": "1"})
    wait_until(lambda: count_rows_activity(dsn, "pgq-listener") == 1, 20, "the listener connected")
    with pgq.App(dsn) as app:
        for _ in range(3):
            assert _terminate(dsn, "pgq-listener") == 1
            job = app.enqueue_sync("noop")
            wait_until(lambda j=job: app.get_job_sync(j.id).is_final, 5, "the job to run")  # type: ignore[misc]
            done = app.get_job_sync(job.id)
            assert done.started_at is not None
            assert (done.started_at - done.created_at).total_seconds() < 1.5
            wait_until(lambda: count_rows_activity(dsn, "pgq-listener") == 1, 20, "the listener back")
    assert "LISTEN is not working" in start_worker.all_logs()


def count_rows_activity(dsn: str, application_name: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s",
            (application_name,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_postgres_restart_under_load_loses_nothing(private_server: Any, start_worker: WorkerProcesses) -> None:
    from pgserver import _commands

    pg_ctl = getattr(_commands, "pg_ctl")  # noqa: B009 - made at import time, invisible to mypy
    info = private_server.get_postmaster_info()
    dsn = psycopg.conninfo.make_conninfo(host=str(info.socket_dir), port=int(info.port), user="postgres")
    migrate(dsn)
    start_worker.dsn = dsn
    with pgq.App(dsn) as app:
        app.enqueue_many_sync([{"task": "sleepy", "args": {"seconds": 0.05}} for _ in range(600)])
        # A restart takes seconds: a rescue lease longer than that keeps live jobs unrescued.
        start_worker("--concurrency", "10", env={**FAST, "PGQ_RESCUE_AFTER": "20"})
        wait_until(lambda: count_rows(dsn, "state = 'succeeded'") >= 100, 30, "100 done before the restart")
        before = time.monotonic()
        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=private_server.pgdata, user=private_server.system_user)
        restarted = time.monotonic()
        wait_until(lambda: _succeeded_or_none(dsn) == 600, 60, "all 600 succeeded")
        recovered = time.monotonic()
    runs = collections.Counter(read_runs(start_worker.run_log))
    assert count_rows(dsn, "state <> 'succeeded'") == 0
    assert len(runs) == 600 and max(runs.values()) == 1  # zero lost, none run twice
    assert recovered - restarted < 30, f"restart took {restarted - before:.1f}s, recovery {recovered - restarted:.1f}s"
    assert "database reachable again" in start_worker.all_logs()


def _succeeded_or_none(dsn: str) -> int | None:
    try:
        return count_rows(dsn, "state = 'succeeded'")
    except psycopg.OperationalError:
        return None


@pytest.mark.anyio
async def test_pool_smaller_than_concurrency_does_not_deadlock(dsn: str) -> None:
    app = pgq.App(dsn)

    @app.task
    async def short(i: int) -> int:
        await asyncio.sleep(0.01)
        return i

    async with app:
        jobs = await app.enqueue_many([{"task": "short", "args": {"i": i}} for i in range(300)])
        async with running_worker(app, concurrency=50, pool_size=2, heartbeat_interval=0.05, rescue_after=1):
            done = await wait_final(app, [j.id for j in jobs], timeout=60)
    assert all(j.state == pgq.JobState.SUCCEEDED for j in done)
    assert [j.result for j in done] == list(range(300))
