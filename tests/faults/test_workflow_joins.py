"""Fan-in joins under contention and crashes: real worker processes, exact counts.

A callback must become ready exactly once, when its last parent finishes, also when the
last parents finish at the same moment on different workers (their outcomes written in
batches), and when the worker running them is SIGKILLed and they are rescued.
"""

from __future__ import annotations

import collections
import time

import psycopg
import pytest

import pgq
from tests.faults import FAST
from tests.helpers import WorkerProcesses, count_rows, read_runs, wait_until

pytestmark = pytest.mark.slow


def _registered_workers(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM pgq.workers").fetchone()
    assert row is not None
    return int(row[0])


def _parents_left(dsn: str, job_id: int) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT parents_left FROM pgq.job_waits WHERE job_id = %s", [job_id]).fetchone()
    assert row is not None
    return int(row[0])


def test_four_workers_racing_to_finish_the_last_parents_fire_each_join_once(
    dsn: str, start_worker: WorkerProcesses
) -> None:
    joins, parents_each = 50, 4
    workers = [start_worker("--concurrency", "60", "--poll-interval", "0.2") for _ in range(4)]
    wait_until(lambda: _registered_workers(dsn) == 4, 30, "4 workers registered")
    start = time.time() + 3.0
    with pgq.App(dsn) as app:
        # Parent k of every join is enqueued together: consecutive ids go to one claim,
        # so the parents of one join are spread over the workers, and all of them end
        # at the join's own instant.
        parents = app.enqueue_many_sync(
            [
                {"task": "sleep_until", "args": {"at": start + 0.05 * j}}
                for _ in range(parents_each)
                for j in range(joins)
            ]
        )
        callbacks = app.enqueue_many_sync(
            [
                {"task": "join", "args": {"n": j}, "depends_on": [parents[k * joins + j] for k in range(parents_each)]}
                for j in range(joins)
            ]
        )
        assert {c.state for c in callbacks} == {"waiting"}
        wait_until(lambda: count_rows(dsn, "task = 'join' AND state = 'succeeded'") == joins, 60, "every join ran")
    for proc in workers:
        proc.terminate()
    runs = collections.Counter(read_runs(start_worker.run_log))
    assert all(runs[c.id] == 1 for c in callbacks), "a join ran more than once"
    assert count_rows(dsn, "task = 'join' AND attempt = 1 AND jsonb_array_length(result) = 4") == joins
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM pgq.job_waits WHERE parents_left = 0").fetchone() == (joins,)
    # The parents really ran on several workers: the race was between processes.
    with psycopg.connect(dsn) as conn:
        spread = conn.execute(
            "SELECT count(DISTINCT j.worker_id) FROM pgq.job_parents AS p JOIN pgq.jobs AS j ON j.id = p.parent_id"
        ).fetchone()
    assert spread is not None and spread[0] >= 2


def test_a_sigkilled_worker_during_fan_in_still_fires_the_join_once_after_rescue(
    dsn: str, start_worker: WorkerProcesses
) -> None:
    with pgq.App(dsn) as app:
        parents = app.enqueue_many_sync([{"task": "sleepy", "args": {"seconds": 1.5}} for _ in range(20)])
        callback = app.enqueue_sync("join", depends_on=parents)
    victim = start_worker("--concurrency", "20", env=FAST)
    wait_until(lambda: count_rows(dsn, "state = 'running'") == 20, 30, "20 parents running")
    victim.kill()
    victim.wait(10)
    assert count_rows(dsn, f"id = {callback.id} AND state = 'waiting'") == 1
    assert _parents_left(dsn, callback.id) == 20
    start_worker("--concurrency", "20", env=FAST)
    wait_until(lambda: count_rows(dsn, f"id = {callback.id} AND state = 'succeeded'") == 1, 60, "the join ran")
    runs = collections.Counter(read_runs(start_worker.run_log))
    assert runs[callback.id] == 1
    assert count_rows(dsn, "task = 'sleepy' AND attempt = 2 AND errors->0->>'type' = 'WorkerLost'") == 20
    with pgq.App(dsn) as app:
        done = app.get_job_sync(callback.id)
    assert done.result == [1.5] * 20 and done.attempt == 1 and _parents_left(dsn, callback.id) == 0
