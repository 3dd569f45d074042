"""Workers that die, freeze or are stopped: no job lost, none finished twice."""

from __future__ import annotations

import collections
import os
import signal
import time

import psycopg
import pytest

import pgq
from tests.faults import FAST
from tests.helpers import WorkerProcesses, count_rows, read_runs, wait_until

pytestmark = pytest.mark.slow


def _leader(dsn: str) -> str | None:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT worker_id FROM pgq.leases WHERE name = 'maintenance' AND expires_at > now()"
        ).fetchone()
    return None if row is None else str(row[0])


def test_sigkilled_worker_with_500_jobs_in_flight_loses_none(dsn: str, start_worker: WorkerProcesses) -> None:
    with pgq.App(dsn) as app:
        app.enqueue_many_sync([{"task": "sleepy", "args": {"seconds": 1.0}} for _ in range(500)])
    victim = start_worker("--concurrency", "500", env=FAST)
    wait_until(lambda: count_rows(dsn, "state = 'running'") == 500, 60, "500 jobs running")
    victim.kill()
    victim.wait(10)
    assert count_rows(dsn, "state = 'running'") == 500  # stranded until rescued

    start_worker("--concurrency", "100", env=FAST)
    wait_until(lambda: count_rows(dsn, "state = 'succeeded'") == 500, 60, "500 succeeded jobs")
    assert count_rows(dsn, "state <> 'succeeded'") == 0
    # Each was run twice: the killed attempt (counted) and the one that finished.
    assert (
        count_rows(dsn, "attempt = 2 AND jsonb_array_length(errors) = 1 AND errors->0->>'type' = 'WorkerLost'") == 500
    )
    with psycopg.connect(dsn) as conn:
        workers = conn.execute("SELECT count(*) FROM pgq.workers").fetchone()
    assert workers == (1,)  # the dead worker's row was removed by the leader


def test_poison_job_that_kills_its_worker_fails_after_max_attempts(dsn: str, start_worker: WorkerProcesses) -> None:
    with pgq.App(dsn) as app:
        job = app.enqueue_sync("suicide", max_attempts=3)
    deadline = time.monotonic() + 60
    while not app.get_job_sync(job.id).is_final:
        assert time.monotonic() < deadline, "poison job never reached a final state"
        if not start_worker.procs or start_worker.procs[-1].poll() is not None:
            start_worker(env=FAST)  # a supervisor would restart the crashed worker like this
        time.sleep(0.1)
    with pgq.App(dsn) as app:
        final = app.get_job_sync(job.id)
    assert final.state == pgq.JobState.FAILED and final.attempt == final.max_attempts == 3
    assert [e["attempt"] for e in final.errors] == [1, 2, 3]
    assert {e["type"] for e in final.errors} == {"WorkerLost"}
    assert len(read_runs(start_worker.run_log)) == 3
    assert [p.returncode for p in start_worker.procs[:3]] == [17, 17, 17]


def test_leadership_moves_within_seconds_when_the_leader_is_killed(dsn: str, start_worker: WorkerProcesses) -> None:
    first = start_worker(env=FAST)
    wait_until(lambda: _leader(dsn) is not None, 20, "a leader")
    second = start_worker(env=FAST)
    wait_until(lambda: len(_worker_pids(dsn)) == 2, 20, "two registered workers")
    leader = _leader(dsn)
    assert leader is not None and leader.split(":")[1] == str(first.pid)
    first.kill()
    killed_at = time.monotonic()
    wait_until(lambda: (now := _leader(dsn)) is not None and now != leader, 20, "a new leader")
    assert time.monotonic() - killed_at < 3  # the lease is 3 maintenance intervals (0.6 s here)
    assert _leader(dsn).split(":")[1] == str(second.pid)  # type: ignore[union-attr]
    second.send_signal(signal.SIGTERM)
    assert second.wait(20) == 0
    # A clean stop gives the lease and the row up at once; the killed one's row stays
    # until the leader finds it silent for longer than the rescue lease.
    assert _leader(dsn) is None and _worker_pids(dsn) == [first.pid]


def _worker_pids(dsn: str) -> list[int]:
    with psycopg.connect(dsn) as conn:
        return [int(r[0]) for r in conn.execute("SELECT pid FROM pgq.workers ORDER BY started_at").fetchall()]


def test_frozen_worker_is_rescued_and_its_late_outcome_is_rejected(dsn: str, start_worker: WorkerProcesses) -> None:
    with pgq.App(dsn) as app:
        job = app.enqueue_sync("attempt_marker", {"seconds": 1.0})
    frozen = start_worker(env=FAST)
    wait_until(lambda: count_rows(dsn, "state = 'running'") == 1, 20, "the job running")
    os.kill(frozen.pid, signal.SIGSTOP)  # a long GC pause, a partitioned host
    try:
        start_worker(env=FAST)
        wait_until(lambda: count_rows(dsn, "state = 'succeeded'") == 1, 30, "the job done by the second worker")
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    time.sleep(2)  # the frozen attempt wakes up and tries to finish
    with pgq.App(dsn) as app:
        done = app.get_job_sync(job.id)
    assert done.state == pgq.JobState.SUCCEEDED and done.attempt == 2 and done.result == 2
    assert [e["type"] for e in done.errors] == ["WorkerLost"]
    log = start_worker.log_path(0).read_text()
    assert "late outcome rejected" in log or "is no longer owned by this worker" in log
    assert frozen.poll() is None  # it carries on working


def test_sigterm_during_work_fails_nothing_and_everything_finishes(dsn: str, start_worker: WorkerProcesses) -> None:
    with pgq.App(dsn) as app:
        app.enqueue_many_sync([{"task": "sleepy", "args": {"seconds": 0.3}} for _ in range(100)])
    first = start_worker("--concurrency", "20", "--shutdown-timeout", "0.1", env=FAST)
    wait_until(lambda: count_rows(dsn, "state = 'succeeded'") >= 20, 30, "some jobs done")
    first.send_signal(signal.SIGTERM)
    assert first.wait(20) == 0
    assert count_rows(dsn, "state IN ('failed', 'running')") == 0
    start_worker("--concurrency", "20", env=FAST)
    wait_until(lambda: count_rows(dsn, "state = 'succeeded'") == 100, 30, "all 100 succeeded")
    assert count_rows(dsn, "errors <> '[]'") == 0
    runs = collections.Counter(read_runs(start_worker.run_log))
    assert len(runs) == 100  # handed-back jobs ran again; finished ones never did
