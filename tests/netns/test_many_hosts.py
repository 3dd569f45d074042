"""4 hosts x 2 worker processes, each host on its own network stack, drain one batch:
every job runs exactly once (the task records each execution in netns_runs)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import psycopg

import pgq
from tests.netns.hosts import Host, wait_for

JOBS = 5000


def _done(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM pgq.jobs WHERE state = 'succeeded'").fetchone()
    assert row is not None
    return int(row[0])


def test_four_hosts_run_every_job_exactly_once(
    net_dsn: str, hosts: Callable[[int], list[Host]], tmp_path: Path
) -> None:
    app = pgq.App(net_dsn)
    with app:
        app.enqueue_many_sync([{"task": "record", "args": {"n": i}} for i in range(JOBS)])
    started = time.monotonic()
    for host in hosts(4):
        for n in range(2):
            host.worker(net_dsn, tmp_path / f"{host.label}-{n}.log", "--concurrency", "20")
    wait_for(lambda: _done(net_dsn) == JOBS, 55, f"{JOBS} jobs to succeed")
    elapsed = time.monotonic() - started
    with psycopg.connect(net_dsn) as conn:
        total, distinct = conn.execute("SELECT count(*), count(DISTINCT job_id) FROM netns_runs").fetchone() or (0, 0)
        per_host: dict[str, int] = dict(conn.execute("SELECT host, count(*) FROM netns_runs GROUP BY host").fetchall())
        missing = conn.execute(
            "SELECT count(*) FROM pgq.jobs j WHERE NOT EXISTS (SELECT 1 FROM netns_runs r WHERE r.job_id = j.id)"
        ).fetchone()
    print(f"{JOBS} jobs on 4 hosts x 2 workers in {elapsed:.1f} s (with start-up); per host: {per_host}")
    assert (total, distinct) == (JOBS, JOBS)  # none twice
    assert missing == (0,)  # none missing
    assert sorted(per_host) == ["h0", "h1", "h2", "h3"]  # every host took part
