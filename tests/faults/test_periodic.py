"""Periodic jobs with real worker processes: every tick enqueued exactly once, by two
workers at once and across a SIGKILLed leader."""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import signal
import time

import psycopg
import pytest

from tests.faults import FAST
from tests.helpers import WorkerProcesses, read_runs, wait_until

pytestmark = pytest.mark.slow

PERIODIC = "tests.apps.periodic:app"


def _ticks(dsn: str) -> list[dt.datetime]:
    """run_at of every job the every_second schedule enqueued, in order."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT run_at FROM pgq.jobs WHERE task = 'every_second' ORDER BY run_at").fetchall()
    return [r[0] for r in rows]


def _leader_pid(dsn: str) -> int | None:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT worker_id FROM pgq.leases WHERE name = 'maintenance' AND expires_at > now()"
        ).fetchone()
    return None if row is None else int(str(row[0]).split(":")[1])


def _assert_each_tick_once(dsn: str, ticks: list[dt.datetime]) -> None:
    assert len(set(ticks)) == len(ticks), "a tick was enqueued twice"
    assert all(t.microsecond == 0 for t in ticks)
    gaps = [(a, b) for a, b in itertools.pairwise(ticks) if b - a != dt.timedelta(seconds=1)]
    assert gaps == [], f"ticks lost between {gaps}"
    with psycopg.connect(dsn) as conn:
        keys = conn.execute("SELECT count(DISTINCT idempotency_key) FROM pgq.jobs WHERE task = 'every_second'")
        assert keys.fetchone() == (len(ticks),)


def _stop(workers: WorkerProcesses) -> None:
    for proc in workers.procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in workers.procs:
        proc.wait(30)


def test_two_workers_with_the_same_schedule_enqueue_each_tick_once(dsn: str, start_worker: WorkerProcesses) -> None:
    for _ in range(2):
        start_worker(app=PERIODIC, env=FAST)
    with psycopg.connect(dsn) as conn:
        wait_until(lambda: conn.execute("SELECT count(*) FROM pgq.workers").fetchone() == (2,), 30, "two workers")
    first = len(_ticks(dsn))
    wait_until(lambda: len(_ticks(dsn)) >= first + 6, 60, "six more ticks with both workers up")
    _stop(start_worker)
    ticks = _ticks(dsn)
    _assert_each_tick_once(dsn, ticks)
    # Both workers ran the jobs; no job ran twice.
    runs = collections.Counter(read_runs(start_worker.run_log))
    assert runs and max(runs.values()) == 1


def test_a_sigkilled_leader_loses_and_doubles_no_tick(dsn: str, start_worker: WorkerProcesses) -> None:
    procs = [start_worker(app=PERIODIC, env=FAST) for _ in range(2)]
    wait_until(lambda: _leader_pid(dsn) is not None, 30, "a leader")
    wait_until(lambda: len(_ticks(dsn)) >= 3, 30, "three ticks")
    leader_pid = _leader_pid(dsn)
    (leader,) = [p for p in procs if p.pid == leader_pid]
    leader.kill()
    killed_at = time.time()
    wait_until(lambda: _leader_pid(dsn) not in (None, leader_pid), 30, "a new leader")
    before = len(_ticks(dsn))
    wait_until(lambda: len(_ticks(dsn)) >= before + 3, 30, "three ticks from the new leader")
    _stop(start_worker)
    ticks = _ticks(dsn)
    _assert_each_tick_once(dsn, ticks)
    # The ticks run without a hole from before the kill to after the takeover.
    assert ticks[0].timestamp() < killed_at - 1 and ticks[-1].timestamp() > killed_at + 2
