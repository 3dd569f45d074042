"""The rescuer and the worker's registration, driven directly (no processes)."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

import pgq
from pgq.worker.rescuer import Rescuer
from tests.helpers import running_worker

pytestmark = pytest.mark.anyio


async def test_rescuer_run_once_moves_each_stale_job_to_the_right_state(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO pgq.workers (id, host, pid, queues, concurrency, heartbeat_at) VALUES "
            "('dead', 'h', 1, '{default}', 1, now() - interval '1 hour'), ('alive', 'h', 2, '{default}', 1, now())"
        )
        ids = [
            conn.execute(
                "INSERT INTO pgq.jobs (task, state, attempt, max_attempts, worker_id, started_at, heartbeat_at, "
                "cancel_requested_at) VALUES ('t', 'running', %s, 3, %s, now(), now() - %s::interval, %s) RETURNING id",
                params,
            ).fetchone()[0]  # type: ignore[index]
            for params in [
                (1, "dead", "1 hour", None),  # attempts left: retried
                (3, "dead", "1 hour", None),  # last attempt: failed
                (2, "dead", "1 hour", "now"),  # cancel was requested: cancelled
                (1, "alive", "0 seconds", None),  # fresh heartbeat: untouched
            ]
        ]
    async with AsyncConnectionPool(dsn, min_size=1, max_size=2, kwargs={"autocommit": True}) as pool:
        report = await Rescuer(pool, rescue_after=30).run_once()
        again = await Rescuer(pool, rescue_after=30).run_once()
    assert report.jobs == [(ids[0], "retrying"), (ids[1], "failed"), (ids[2], "cancelled")]
    assert report.dead_workers == ["dead"]
    assert again.jobs == [] and again.dead_workers == []
    with pgq.App(dsn) as app:
        retried, failed, cancelled, fresh = (app.get_job_sync(i) for i in ids)
    assert retried.worker_id is None and retried.heartbeat_at is None and retried.finished_at is None
    assert failed.finished_at and cancelled.finished_at
    for job in (retried, failed, cancelled):
        (error,) = job.errors
        assert error["type"] == "WorkerLost" and error["attempt"] == job.attempt
        assert "worker dead sent no heartbeat since" in error["message"]
    assert fresh.state == pgq.JobState.RUNNING and fresh.errors == []


async def test_worker_registers_its_row_and_removes_it_on_stop(dsn: str) -> None:
    app = pgq.App(dsn)

    @app.task(queue="emails")
    async def send() -> None:
        return None

    async with app, running_worker(app, concurrency=7) as worker:
        row: Any = None
        while row is None:  # registered once its pool is open, before the first claim
            await asyncio.sleep(0.02)
            with psycopg.connect(dsn) as conn:
                row = conn.execute("SELECT id, host, pid, queues, concurrency FROM pgq.workers").fetchone()
        assert row[0] == worker.id and row[3] == ["emails"] and row[4] == 7
        assert row[0].startswith(f"{row[1]}:{row[2]}:")
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM pgq.workers").fetchone() == (0,)


def test_rescue_lease_shorter_than_two_heartbeats_is_refused() -> None:
    with pytest.raises(pgq.ConfigError, match="PGQ_RESCUE_AFTER"):
        pgq.Settings.from_env({"PGQ_HEARTBEAT_INTERVAL": "5", "PGQ_RESCUE_AFTER": "6"})
