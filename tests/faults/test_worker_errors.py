"""A worker keeps serving through unexpected database errors, and says what happened."""

from __future__ import annotations

import asyncio
import logging

import psycopg
import pytest

import pgq
from pgq.worker.outage import describe
from tests.helpers import running_worker, wait_final

pytestmark = pytest.mark.anyio

_CLAIM_FUNCTION = "pgq.claim_jobs(text[], integer, text)"


async def _execute(dsn: str, sql: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(sql)  # test-only DDL with fixed text


async def _wait_running(app: pgq.App, job_ids: list[int]) -> None:
    for _ in range(200):
        if [(await app.get_job(i)).state for i in job_ids] == ["running"] * len(job_ids):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("jobs did not start")


async def test_worker_survives_a_failing_claim_function_and_finishes_its_claimed_jobs(
    dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = pgq.App(dsn)

    @app.task
    async def slow(seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds

    caplog.set_level(logging.INFO, logger="pgq")
    async with app, running_worker(app, concurrency=4, poll_interval=0.2) as worker:
        claimed = [(await slow.enqueue(seconds=1.5)).id for _ in range(2)]
        await _wait_running(app, claimed)
        await _execute(dsn, f"ALTER FUNCTION {_CLAIM_FUNCTION} RENAME TO claim_jobs_gone")
        try:
            later = [(await slow.enqueue(seconds=0.01)).id for _ in range(3)]
            done = await wait_final(app, claimed, timeout=10)  # claimed before the failure: they finish
            assert [j.state for j in done] == ["succeeded", "succeeded"]
            assert [(await app.get_job(i)).state for i in later] == ["queued"] * 3
            assert worker.outage.since is None  # the database is fine; the claim is not
        finally:
            await _execute(dsn, "ALTER FUNCTION pgq.claim_jobs_gone(text[], integer, text) RENAME TO claim_jobs")
        done = await wait_final(app, later, timeout=10)
        assert [j.state for j in done] == ["succeeded"] * 3
        assert worker.jobs_done == 5
    messages = [r.getMessage() for r in caplog.records]
    failures = [m for m in messages if m.startswith("unexpected error while claiming jobs")]
    assert len(failures) == 1, messages  # said once per run of failures, not on every retry
    assert "UndefinedFunction: function pgq.claim_jobs(" in failures[0]
    assert "claiming jobs works again" in messages


async def test_killed_worker_connections_are_reported_as_what_happened(
    dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = pgq.App(dsn)

    @app.task
    async def quick(i: int) -> int:
        await asyncio.sleep(0.02)
        return i

    caplog.set_level(logging.WARNING, logger="pgq")
    async with app, running_worker(app, concurrency=4, poll_interval=0.05, listen=False) as worker:
        jobs = [(await quick.enqueue(i=i)).id for i in range(40)]
        for _ in range(5):
            await _execute(
                dsn,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = 'pgq-worker'",
            )
            await asyncio.sleep(0.3)
        done = await wait_final(app, jobs, timeout=30)
        assert all(j.state == "succeeded" for j in done)
        assert worker.outage.since is None
    said = [r.getMessage() for r in caplog.records if "database unreachable while" in r.getMessage()]
    assert said, "the killed connections were not reported"
    for message in said:
        assert "cannot connect" not in message  # it was connected; the connection was killed
        assert any(cause in message for cause in ("AdminShutdown", "server closed the connection")), message


async def test_a_connection_broken_inside_a_pipeline_is_described_as_such() -> None:
    error = psycopg.OperationalError("cannot exit pipeline mode while busy")
    assert describe(error) == (
        "OperationalError: the connection broke inside a pipeline (cannot exit pipeline mode while busy)"
    )
    hidden = psycopg.OperationalError("cannot exit pipeline mode while busy")
    hidden.__context__ = psycopg.errors.AdminShutdown("terminating connection due to administrator command")
    assert describe(hidden) == "AdminShutdown: terminating connection due to administrator command"
