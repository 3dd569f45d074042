"""Queue limits under concurrent claimers: a limit is a promise about real time.

The log of real start times is kept by the database itself: a BEFORE UPDATE row trigger
(added to the test's database only) records ``clock_timestamp()`` when a job turns
``running`` and when it leaves ``running``, so the times are those of the row changes,
not the claim's own stamps (which the function under test chooses).
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from collections.abc import Callable

import psycopg
import pytest

import pgq
from tests.faults import FAST
from tests.helpers import WorkerProcesses, count_rows, wait_until

START_LOG = """
CREATE TABLE start_log (id bigserial PRIMARY KEY, job_id bigint, delta int, at timestamptz);
CREATE FUNCTION log_running() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'running' AND OLD.state <> 'running' THEN
        INSERT INTO start_log (job_id, delta, at) VALUES (NEW.id, 1, clock_timestamp());
    ELSIF OLD.state = 'running' AND NEW.state <> 'running' THEN
        INSERT INTO start_log (job_id, delta, at) VALUES (NEW.id, -1, clock_timestamp());
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER log_running BEFORE UPDATE OF state ON pgq.jobs FOR EACH ROW EXECUTE FUNCTION log_running();
"""


def _install_start_log(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(START_LOG)


def _starts(dsn: str) -> list[dt.datetime]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT at FROM start_log WHERE delta = 1 ORDER BY at").fetchall()]


def _busiest_window(times: list[dt.datetime], period: dt.timedelta) -> int:
    """The most starts any half-open window [t, t + period) holds (t at a start is enough)."""
    most, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= period:
            first += 1
        most = max(most, last - first + 1)
    return most


def _claim_concurrently(dsn: str, claimers: int, seconds: float, step: Callable[[psycopg.Connection], object]) -> int:
    """Run ``step`` in a loop on ``claimers`` connections at once; return the claims made."""
    claims = [0] * claimers
    errors: list[BaseException] = []
    barrier = threading.Barrier(claimers)

    def loop(index: int) -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                barrier.wait()
                stop = time.monotonic() + seconds
                while time.monotonic() < stop:
                    step(conn)
                    claims[index] += 1
        except (psycopg.Error, threading.BrokenBarrierError, AssertionError) as exc:  # reported by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(claimers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 30)
    assert not errors, errors
    return sum(claims)


def _claim(conn: psycopg.Connection, limit: int) -> list[int]:
    rows = conn.execute("SELECT id FROM pgq.claim_jobs(%s, %s, 'test-claimer')", (["default"], limit)).fetchall()
    return [r[0] for r in rows]


def test_rate_limit_holds_in_real_time_for_12_concurrent_claimers(dsn: str) -> None:
    """20 starts/s with 12 connections claiming as fast as they can for 3 s: no second of
    real time (by the row-change log) holds more than 20 starts, nor do the claim's stamps."""
    with pgq.App(dsn) as app:
        app.set_queue_limits_sync("default", rate_limit=20, rate_period=1)
        app.enqueue_many_sync([{"task": "noop"} for _ in range(400)])
    _install_start_log(dsn)

    claims = _claim_concurrently(dsn, 12, 3.2, lambda conn: _claim(conn, random.randint(1, 4)))

    starts = _starts(dsn)
    period = dt.timedelta(seconds=1)
    assert claims > len(starts) / 4  # up to 4 jobs a claim: many claims found the window full
    assert 60 <= len(starts) <= 84  # the limit, not the claimers, set the pace (3.2 s at 20/s)
    assert _busiest_window(starts, period) == 20
    with psycopg.connect(dsn) as conn:
        stamps = [r[0] for r in conn.execute("SELECT started_at FROM pgq.jobs WHERE started_at IS NOT NULL ORDER BY 1")]
    assert _busiest_window(stamps, period) == 20


def test_max_running_holds_in_real_time_for_12_concurrent_claimers(dsn: str) -> None:
    """max_running 5 with 12 connections that claim 1-3 jobs, hold each up to 30 ms and finish
    it: replaying the row-change log in order, never more than 5 jobs run at once."""
    with pgq.App(dsn) as app:
        app.set_queue_limits_sync("default", max_running=5)
        app.enqueue_many_sync([{"task": "noop"} for _ in range(3000)])
    _install_start_log(dsn)

    def claim_hold_finish(conn: psycopg.Connection) -> None:
        for job_id in _claim(conn, random.randint(1, 3)):
            time.sleep(random.uniform(0.005, 0.03))
            conn.execute("UPDATE pgq.jobs SET state = 'succeeded', finished_at = now() WHERE id = %s", (job_id,))

    _claim_concurrently(dsn, 12, 3.0, claim_hold_finish)

    with psycopg.connect(dsn) as conn:
        deltas = [r[0] for r in conn.execute("SELECT delta FROM start_log ORDER BY at, id")]
    running, peak = 0, 0
    for delta in deltas:
        running += delta
        peak = max(peak, running)
    assert len(deltas) > 60  # dozens of jobs went through
    assert peak == 5


@pytest.mark.slow
def test_rate_limit_of_20_per_second_holds_across_4_worker_processes(dsn: str, start_worker: WorkerProcesses) -> None:
    with pgq.App(dsn) as app:
        app.set_queue_limits_sync("default", rate_limit=20, rate_period=1)
    _install_start_log(dsn)
    with pgq.App(dsn) as app:
        app.enqueue_many_sync([{"task": "noop"} for _ in range(70)])
    for _ in range(4):
        start_worker("--concurrency", "8", env={**FAST, "PGQ_POLL_INTERVAL": "0.02"})
    wait_until(lambda: count_rows(dsn, "state = 'succeeded'") == 70, 30, "70 succeeded")
    starts = _starts(dsn)
    assert len(starts) == 70
    assert _busiest_window(starts, dt.timedelta(seconds=1)) == 20
    assert starts[-1] - starts[0] < dt.timedelta(seconds=4.5)  # and the limit does not starve the queue
