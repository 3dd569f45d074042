"""Bulk enqueue: the COPY fast path writes exactly what one-by-one enqueue writes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

import pgq
from tests.helpers import count_rows

pytestmark = pytest.mark.anyio

# Columns the database fills in differently for every row.
_PER_ROW = {"id", "created_at", "run_at"}


def _rows(dsn: str, ids: list[int]) -> list[dict[str, Any]]:
    with psycopg.connect(dsn) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT * FROM pgq.jobs WHERE id = ANY(%s) ORDER BY id", (ids,))
        return cur.fetchall()


def _specs() -> list[pgq.JobSpec]:
    return [
        pgq.JobSpec("add", {"a": 1, "b": 2}),
        pgq.JobSpec("send_email", {"to": "a@b.c", "tags": ["x", "ü"], "n": None, "f": 1.5}),
        pgq.JobSpec("add", {"a": "tab\there", "b": "new\nline\\"}, queue="other", priority=-7, max_attempts=2),
        pgq.JobSpec("unregistered_is_fine_here", {}),
    ]


def test_copy_rows_are_identical_to_one_by_one_inserts(dsn: str) -> None:
    app = pgq.App(dsn)
    with app:
        single = [
            app.enqueue_sync(s.task, s.args, queue=s.queue, priority=s.priority, max_attempts=s.max_attempts)
            for s in _specs()
        ]
        bulk = app.enqueue_many_sync(_specs())
        stored_bulk = [app.get_job_sync(j.id) for j in bulk]
        stored_single = [app.get_job_sync(j.id) for j in single]
    assert bulk == stored_bulk and single == stored_single  # what was returned is what is stored
    assert [j.id for j in bulk] == sorted(j.id for j in bulk)  # ids ascend in input order
    for one, many in zip(_rows(dsn, [j.id for j in single]), _rows(dsn, [j.id for j in bulk]), strict=True):
        assert {k: v for k, v in one.items() if k not in _PER_ROW} == {
            k: v for k, v in many.items() if k not in _PER_ROW
        }
        assert many["state"] == "queued" and many["run_at"] == many["created_at"]


def test_copy_sends_one_notify_per_queue_at_commit(dsn: str) -> None:
    app = pgq.App(dsn)
    with psycopg.connect(dsn, autocommit=True) as listener, psycopg.connect(dsn) as conn:
        listener.execute("LISTEN pgq_jobs")
        jobs = app.enqueue_many_sync([{"task": "t", "queue": f"q{i % 3}"} for i in range(3000)], conn=conn)
        assert list(listener.notifies(timeout=0.3)) == []  # nothing before commit
        conn.commit()
        payloads = sorted(n.payload for n in listener.notifies(timeout=1))
    assert payloads == ["q0", "q1", "q2"]
    assert len(jobs) == 3000 and count_rows(dsn) == 3000


async def test_copy_rolled_back_with_the_callers_transaction_leaves_nothing(dsn: str) -> None:
    app = pgq.App(dsn)
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        with pytest.raises(ZeroDivisionError):
            async with conn.transaction():
                jobs = await app.enqueue_many([{"task": "t", "args": {"i": i}} for i in range(500)], conn=conn)
                assert len(jobs) == 500
                raise ZeroDivisionError
        async with conn.transaction():
            kept = await app.enqueue_many([{"task": "t"}], conn=conn)
    with psycopg.connect(dsn) as sync_conn:
        app.enqueue_many_sync([{"task": "t"}] * 10, conn=sync_conn)
        sync_conn.rollback()
    assert count_rows(dsn) == 1
    assert count_rows(dsn, "id = %s", [kept[0].id]) == 1


async def test_bad_job_anywhere_in_a_batch_writes_nothing(dsn: str) -> None:
    app = pgq.App(dsn)
    good: list[dict[str, Any]] = [{"task": "t", "args": {"i": i}} for i in range(1000)]
    async with app:
        for bad in (
            {"task": "t", "args": {"x": {1, 2}}},
            {"task": "t", "queue": "no spaces"},
            {"task": "t", "priority": 10**6},
        ):
            with pytest.raises((TypeError, ValueError)):
                await app.enqueue_many([*good, bad])
    assert count_rows(dsn) == 0


async def test_batches_with_keys_or_times_keep_idempotency_and_scheduling(dsn: str) -> None:
    app = pgq.App(dsn)
    async with app:
        first = await app.enqueue_many([{"task": "t", "idempotency_key": "k1"}, {"task": "t"}])
        again = await app.enqueue_many([{"task": "t"}, {"task": "t", "idempotency_key": "k1"}])
        later = await app.enqueue_many([{"task": "t", "delay": dt.timedelta(minutes=5)}, {"task": "t"}])
    assert again[1].id == first[0].id and again[0].id not in {j.id for j in first}
    assert [j.state for j in later] == [pgq.JobState.SCHEDULED, pgq.JobState.QUEUED]
    assert count_rows(dsn) == 5
