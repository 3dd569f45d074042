"""Real `pgq worker` processes: many at once, and shutting down on SIGTERM."""

from __future__ import annotations

import collections
import signal
import time

import pytest

import pgq
from tests.helpers import WorkerProcesses, count_rows, read_runs, wait_until


@pytest.mark.slow
def test_four_worker_processes_drain_2000_jobs_each_executed_exactly_once(
    dsn: str, start_worker: WorkerProcesses
) -> None:
    app = pgq.App(dsn)
    with app:
        jobs = app.enqueue_many_sync(
            [{"task": "noop" if i % 2 else "sync_noop", "args": {"n": i}} for i in range(2000)]
        )
    workers = [start_worker("--concurrency", "10", "--poll-interval", "0.5") for _ in range(4)]
    wait_until(lambda: count_rows(dsn, "state = 'succeeded'") == 2000, 90, "2000 succeeded jobs")
    for proc in workers:
        proc.send_signal(signal.SIGTERM)
    assert [proc.wait(30) for proc in workers] == [0, 0, 0, 0]

    runs = read_runs(start_worker.run_log)
    counts = collections.Counter(runs)
    assert len(runs) == 2000 and set(counts) == {j.id for j in jobs}
    assert max(counts.values()) == 1
    assert count_rows(dsn, "attempt = 1 AND state = 'succeeded' AND result = to_jsonb((args->>'n')::int)") == 2000
    # Every process did a share of the work.
    pids = {line.split()[1] for log in start_worker.run_log.glob("*.log") for line in log.read_text().splitlines()}
    assert len(pids) == 4


def test_sigterm_lets_running_jobs_finish_and_exits_zero(dsn: str, start_worker: WorkerProcesses) -> None:
    app = pgq.App(dsn)
    with app:
        jobs = app.enqueue_many_sync(
            [{"task": "sleepy", "args": {"seconds": 1.0}}, {"task": "sync_sleepy", "args": {"seconds": 1.0}}]
        )
    worker = start_worker("--concurrency", "4", "--shutdown-timeout", "10")
    wait_until(lambda: count_rows(dsn, "state = 'running'") == 2, 20, "both jobs running")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert count_rows(dsn, "state = 'succeeded'") == 2
    with app:
        assert all(app.get_job_sync(j.id).attempt == 1 for j in jobs)


def test_sigterm_past_the_shutdown_timeout_requeues_instead_of_failing(dsn: str, start_worker: WorkerProcesses) -> None:
    app = pgq.App(dsn)
    with app:
        jobs = app.enqueue_many_sync(
            [
                {"task": "sleepy", "args": {"seconds": 60}},
                {"task": "sync_sleepy", "args": {"seconds": 60}},
                {"task": "noop", "args": {}, "delay": 3600},
            ]
        )
    worker = start_worker("--concurrency", "4", "--shutdown-timeout", "0.5")
    wait_until(lambda: count_rows(dsn, "state = 'running'") == 2, 20, "both jobs running")
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert time.monotonic() - started < 10  # a blocked sync thread does not hold the exit
    assert count_rows(dsn, "state IN ('running', 'failed')") == 0
    with app:
        first, second, later = (app.get_job_sync(j.id) for j in jobs)
    assert first.state == second.state == pgq.JobState.QUEUED
    assert first.attempt == second.attempt == 0 and first.errors == [] and first.worker_id is None
    assert later.state == pgq.JobState.SCHEDULED
    log = (start_worker.logs / "worker0.log").read_text()
    assert "handed 2 job(s) back to their queue (unfinished at shutdown)" in log


def test_a_worker_asked_for_uvloop_runs_jobs_on_it_and_stops_on_sigterm(
    dsn: str, start_worker: WorkerProcesses
) -> None:
    app = pgq.App(dsn)
    with app:
        jobs = app.enqueue_many_sync([{"task": "loop_kind"}, {"task": "sync_noop", "args": {"n": 7}}])
    worker = start_worker("--event-loop", "uvloop")
    wait_until(lambda: count_rows(dsn, "state = 'succeeded'") == 2, 30, "both jobs succeeded")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    with app:
        assert app.get_job_sync(jobs[0].id).result == "uvloop"
        assert app.get_job_sync(jobs[1].id).result == 7
