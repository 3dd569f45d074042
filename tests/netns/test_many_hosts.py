"""4 hosts x 2 worker processes, each host on its own network stack, drain one batch:
every job runs exactly once (the task records each execution in netns_runs)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

import pgq
from tests.netns.hosts import Host, wait_for

pytestmark = pytest.mark.slow

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
    made = hosts(4)
    for host in made:
        for n in range(2):
            host.worker(net_dsn, tmp_path / f"{host.label}-{n}.log", "--concurrency", "20")
    peak: dict[str, int] = {}

    def drained() -> bool:
        with psycopg.connect(net_dsn) as conn:
            for addr, count in conn.execute(
                "SELECT host(client_addr), count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND client_addr IS NOT NULL GROUP BY 1"
            ):
                peak[addr] = max(peak.get(addr, 0), count)
        return _done(net_dsn) == JOBS

    wait_for(drained, 55, f"{JOBS} jobs to succeed")
    elapsed = time.monotonic() - started
    with psycopg.connect(net_dsn) as conn:
        total, distinct = conn.execute("SELECT count(*), count(DISTINCT job_id) FROM netns_runs").fetchone() or (0, 0)
        per_host: dict[str, int] = dict(conn.execute("SELECT host, count(*) FROM netns_runs GROUP BY host").fetchall())
        missing = conn.execute(
            "SELECT count(*) FROM pgq.jobs j WHERE NOT EXISTS (SELECT 1 FROM netns_runs r WHERE r.job_id = j.id)"
        ).fetchone()
    connections = {host.label: peak.get(host.address, 0) for host in made}
    print(
        f"\n{JOBS} jobs on 4 hosts x 2 workers in {elapsed:.1f} s (with start-up); runs per host: {per_host}; "
        f"peak connections per host: {connections}"
    )
    # Per worker process: its pool (concurrency + 2, at most 10), LISTEN, a ping, the task's own.
    assert all(0 < n <= 2 * (10 + 3) for n in connections.values()), connections
    assert (total, distinct) == (JOBS, JOBS)  # none twice
    assert missing == (0,)  # none missing
    assert sorted(per_host) == ["h0", "h1", "h2", "h3"]  # every host took part
