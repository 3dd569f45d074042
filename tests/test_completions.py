"""Batched outcomes: jobs that finish together are recorded by one statement, every
kind of outcome keeps its meaning inside a batch, and nothing queued is dropped when
the worker stops."""

from __future__ import annotations

import asyncio
import dataclasses

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

import pgq
from pgq._queries import QUERIES
from pgq.errors import JobCancelledError, PermanentError
from pgq.worker.completer import Completer
from pgq.worker.executor import Outcome
from tests.helpers import count_rows, running_worker, wait_final, wait_until

pytestmark = pytest.mark.anyio

KINDS = ("ok", "retry", "fail", "cancel")


def gated_app(dsn: str, gate: asyncio.Event) -> pgq.App:
    """One task whose jobs all wait at ``gate``, then end the way their ``kind`` says."""
    app = pgq.App(dsn)

    @app.task(max_attempts=3, retry=60)
    async def finish(kind: str, n: int) -> int:
        await gate.wait()
        if kind == "retry":
            raise ConnectionError("try again later")
        if kind == "fail":
            raise PermanentError("no point retrying")
        if kind == "cancel":
            raise JobCancelledError("the task stopped itself")
        return n

    return app


async def test_jobs_finishing_together_are_recorded_in_one_transaction_each_with_its_own_outcome(dsn: str) -> None:
    gate = asyncio.Event()
    app = gated_app(dsn, gate)
    async with app, running_worker(app, concurrency=20):
        jobs = await app.enqueue_many([{"task": "finish", "args": {"kind": KINDS[n % 4], "n": n}} for n in range(20)])
        await asyncio.to_thread(wait_until, lambda: count_rows(dsn, "state = 'running'") == 20, 10, "20 running")
        gate.set()
        await asyncio.to_thread(
            wait_until, lambda: count_rows(dsn, "state IN ('running', 'queued')") == 0, 10, "all recorded"
        )
        done = [await app.get_job(j.id) for j in jobs]
    expected_state = {"ok": "succeeded", "retry": "retrying", "fail": "failed", "cancel": "cancelled"}
    for job in done:
        kind, n = job.args["kind"], job.args["n"]
        assert job.state == expected_state[kind], job
        assert job.attempt == 1 and job.heartbeat_at is None
        if kind == "ok":
            assert job.result == n and job.errors == [] and job.finished_at is not None
        else:
            assert job.result is None and len(job.errors) == 1 and job.errors[0]["attempt"] == 1
        if kind == "retry":
            assert job.finished_at is None and job.worker_id is None
    # One transaction wrote all twenty rows: they share the xmin of that transaction.
    assert count_rows(dsn, "true") == 20
    assert _distinct_xmins(dsn) == 1
    assert count_rows(dsn, "state = 'retrying' AND run_at > now() + interval '50 seconds'") == 5


def _distinct_xmins(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(DISTINCT xmin::text) FROM pgq.jobs").fetchone()
    assert row is not None
    return int(row[0])


async def test_outcomes_still_queued_when_the_worker_stops_are_written_not_handed_back(dsn: str) -> None:
    gate = asyncio.Event()
    app = gated_app(dsn, gate)
    async with app:
        async with running_worker(app, concurrency=30) as worker:
            jobs = await app.enqueue_many([{"task": "finish", "args": {"kind": "ok", "n": n}} for n in range(30)])
            await asyncio.to_thread(wait_until, lambda: count_rows(dsn, "state = 'running'") == 30, 10, "30 running")
            gate.set()
            worker.stop()  # the jobs finish as the worker begins to stop
        done = await wait_final(app, [j.id for j in jobs], timeout=5)
    assert [(j.state, j.attempt, j.result) for j in done] == [("succeeded", 1, n) for n in range(30)]


async def test_an_error_text_jsonb_rejects_neither_sinks_its_batch_nor_its_own_job(dsn: str) -> None:
    gate = asyncio.Event()
    app = pgq.App(dsn)

    @app.task(max_attempts=1)
    async def maybe_nul(n: int) -> int:
        await gate.wait()
        if n == 0:
            raise ValueError("bad byte \x00 in the message")
        if n == 1:
            raise ValueError("half a character \ud800 in the message")
        return n

    async with app, running_worker(app, concurrency=10):
        jobs = await app.enqueue_many([{"task": "maybe_nul", "args": {"n": n}} for n in range(10)])
        await asyncio.to_thread(wait_until, lambda: count_rows(dsn, "state = 'running'") == 10, 10, "10 running")
        gate.set()
        done = await wait_final(app, [j.id for j in jobs], timeout=10)
    assert [j.state for j in done] == ["failed", "failed"] + ["succeeded"] * 8
    assert done[0].errors[0]["message"] == "bad byte \\0 in the message"
    assert done[1].errors[0]["message"] == "half a character \\ud800 in the message"
    assert done[0].attempt == done[1].attempt == 1


async def test_a_batch_the_database_refuses_is_written_one_by_one_so_only_the_bad_outcome_is_left(dsn: str) -> None:
    # No task can produce an unwritable outcome any more (results and error texts are
    # checked); this drives the writer directly with one that bypassed those checks.
    async with pgq.App(dsn) as app:
        jobs = await app.enqueue_many([{"task": "t", "args": {"n": n}} for n in range(3)])
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(QUERIES["job_claim"], {"queues": ["default"], "limit": 3, "worker_id": "w"})
    recorded: list[tuple[int, bool]] = []
    lost: list[int] = []
    async with AsyncConnectionPool(dsn, min_size=1, kwargs={"autocommit": True}) as pool:
        completer = Completer(
            pool,
            "w",
            max_batch=10,
            on_outage=lambda what, exc: None,
            on_recorded=lambda job, outcome, accepted: recorded.append((job.id, accepted)),
            on_lost=lambda job, exc: lost.append(job.id),
        )
        for job, result in zip(jobs, [1, "\ud800", 3], strict=True):
            running = dataclasses.replace(job, attempt=1)
            completer.submit(running, Outcome(succeeded=True, result=result))
        await completer.flush()
    assert recorded == [(jobs[0].id, True), (jobs[2].id, True)] and lost == [jobs[1].id]
    assert count_rows(dsn, "state = 'succeeded'") == 2 and count_rows(dsn, "state = 'running'") == 1
