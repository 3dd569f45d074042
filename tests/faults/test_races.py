"""Races: claimers against claimers, completion against the rescuer, many processes."""

from __future__ import annotations

import collections
import datetime as dt
import threading
from typing import Any

import psycopg
import pytest

import pgq
from pgq._queries import QUERIES
from tests.faults import FAST
from tests.helpers import WorkerProcesses, count_rows, read_runs, success_params, wait_until

pytestmark = pytest.mark.slow

STALE = {"lease": dt.timedelta(seconds=1), "limit": 100}


def test_one_job_and_50_concurrent_claimers_make_exactly_one_claim(dsn: str) -> None:
    with pgq.App(dsn) as app:
        app.enqueue_sync("noop")
    barrier = threading.Barrier(50)
    claimed: list[int] = []
    lock = threading.Lock()

    def claim(n: int) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            barrier.wait()
            rows = conn.execute(
                QUERIES["job_claim"], {"queues": ["default"], "limit": 10, "worker_id": f"claimer-{n}"}
            ).fetchall()
        with lock:
            claimed.extend(n for _ in rows)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(claimed) == 1
    assert count_rows(dsn, "state = 'running' AND attempt = 1 AND worker_id = %s", [f"claimer-{claimed[0]}"]) == 1


def _running_stale_job(conn: psycopg.Connection[tuple[Any, ...]]) -> int:
    """A job claimed by worker 'w1' whose heartbeat is 10 s old."""
    conn.execute("INSERT INTO pgq.jobs (task) VALUES ('noop')")
    row = conn.execute(QUERIES["job_claim"], {"queues": ["default"], "limit": 1, "worker_id": "w1"}).fetchone()
    assert row is not None
    conn.execute("UPDATE pgq.jobs SET heartbeat_at = now() - interval '10 seconds'")
    return int(row[0])


def test_completion_that_wins_the_race_with_the_rescuer_stays_succeeded(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn, psycopg.connect(dsn, autocommit=True) as rescuer:
        job_id = _running_stale_job(conn)
        with conn.transaction():  # the completion has the row locked, not yet committed
            done = conn.execute(QUERIES["job_record_outcomes"], success_params(job_id, 1, "w1")).fetchall()
            assert done == [(job_id, "succeeded")]
            assert rescuer.execute(QUERIES["job_rescue_stale"], STALE).fetchall() == []  # skipped, not waited
        assert rescuer.execute(QUERIES["job_rescue_stale"], STALE).fetchall() == []  # and not stale any more
    assert count_rows(dsn, "state = 'succeeded' AND result = '1' AND errors = '[]'") == 1


def test_completion_that_loses_the_race_with_the_rescuer_is_rejected(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn, psycopg.connect(dsn, autocommit=True) as late:
        job_id = _running_stale_job(conn)
        outcome: list[object] = []
        with conn.transaction():  # the rescuer has the row locked, not yet committed
            rescued = conn.execute(QUERIES["job_rescue_stale"], STALE).fetchall()
            assert [r[:2] for r in rescued] == [(job_id, "retrying")]

            def complete() -> None:  # blocks on the row lock until the rescue commits
                params = success_params(job_id, 1, "w1")
                outcome.append(late.execute(QUERIES["job_record_outcomes"], params).fetchall())

            thread = threading.Thread(target=complete)
            thread.start()
            wait_until(lambda: _waiting_on_lock(dsn), 10, "the completion to wait on the row lock")
        thread.join(10)
    assert outcome == [[]]  # re-checked after the rescue: not running any more, rejected
    assert count_rows(dsn, "state = 'retrying' AND result IS NULL AND errors->0->>'type' = 'WorkerLost'") == 1


def _waiting_on_lock(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
    return row is not None and row[0] == 1


def test_10000_jobs_4_processes_concurrency_20_each_executed_exactly_once(
    dsn: str, start_worker: WorkerProcesses
) -> None:
    with pgq.App(dsn) as app:
        jobs = app.enqueue_many_sync([{"task": "noop", "args": {"n": i}} for i in range(10_000)])
    for _ in range(4):
        start_worker("--concurrency", "20", env=FAST)
    wait_until(lambda: count_rows(dsn, "state = 'succeeded'") == 10_000, 120, "10,000 succeeded", interval=0.5)
    runs = collections.Counter(read_runs(start_worker.run_log))
    assert set(runs) == {j.id for j in jobs} and max(runs.values()) == 1
    assert count_rows(dsn, "attempt <> 1 OR result <> to_jsonb((args->>'n')::int)") == 0


def test_heartbeat_skips_a_row_another_transaction_holds_instead_of_waiting(dsn: str) -> None:
    # A heartbeat that waited on row locks could deadlock with the worker's own outcome
    # batch; it must neither wait nor report a held job as lost.
    beat = {"worker_id": "w1", "host": "h", "pid": 1, "queues": ["default"], "concurrency": 2, "schedules": []}
    with psycopg.connect(dsn, autocommit=True) as conn, psycopg.connect(dsn, autocommit=True) as holder:
        held = _running_stale_job(conn)
        conn.execute("INSERT INTO pgq.jobs (task) VALUES ('noop')")
        free = conn.execute(QUERIES["job_claim"], {"queues": ["default"], "limit": 1, "worker_id": "w1"}).fetchall()
        free_id = int(free[0][0])
        conn.execute("UPDATE pgq.jobs SET heartbeat_at = now() - interval '10 seconds'")
        with holder.transaction():
            holder.execute("SELECT 1 FROM pgq.jobs WHERE id = %s FOR UPDATE", [held])
            conn.execute("SET statement_timeout = '2s'")  # waiting would fail the test
            owned = conn.execute(QUERIES["worker_heartbeat"], {**beat, "ids": [held, free_id]}).fetchall()
        assert sorted(owned) == sorted([(held, False), (free_id, False)])
    assert count_rows(dsn, "id = %s AND heartbeat_at < now() - interval '5 seconds'", [held]) == 1  # skipped
    assert count_rows(dsn, "id = %s AND heartbeat_at > now() - interval '5 seconds'", [free_id]) == 1  # refreshed
