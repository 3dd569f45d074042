"""`pgq worker` and `pgq migrate` processes through PgBouncer in transaction mode.

Workers with --no-listen (polling only) and with --listen-url (a direct route for
LISTEN) share the queue; one is SIGKILLed mid-batch: its jobs are rescued and every
job succeeds, each executed once apart from the attempts the kill interrupted.
"""

from __future__ import annotations

import collections
import concurrent.futures
from pathlib import Path

import psycopg
import pytest

import pgq
from tests.conftest import pgq_cli
from tests.faults import FAST
from tests.helpers import WorkerProcesses, count_rows, read_runs, wait_until


@pytest.fixture
def bouncer_workers(bouncer_dsn: str, tmp_path: Path) -> collections.abc.Iterator[WorkerProcesses]:
    workers = WorkerProcesses(bouncer_dsn, tmp_path)
    yield workers
    workers.kill_all()


def test_sigkilled_worker_behind_pgbouncer_loses_no_job(
    bouncer_dsn: str, dsn: str, bouncer_workers: WorkerProcesses
) -> None:
    with pgq.App(bouncer_dsn) as app:
        app.enqueue_many_sync([{"task": "sleepy", "args": {"seconds": 0.05}} for _ in range(400)])
    victim = bouncer_workers("--concurrency", "20", "--listen-url", dsn, env=FAST)
    bouncer_workers("--concurrency", "10", "--no-listen", env=FAST)
    bouncer_workers("--concurrency", "10", "--listen-url", dsn, env=FAST)
    wait_until(lambda: count_rows(dsn, "state = 'succeeded'") >= 40, 60, "jobs succeeding")
    wait_until(
        lambda: count_rows(dsn, "state = 'running' AND worker_id LIKE %s", [f"%:{victim.pid}:%"]) > 0,
        30,
        "the victim running jobs",
    )
    victim.kill()
    victim.wait(10)
    wait_until(lambda: count_rows(dsn, "state = 'succeeded'") == 400, 90, "400 succeeded")
    assert count_rows(dsn, "state <> 'succeeded'") == 0
    runs = collections.Counter(read_runs(bouncer_workers.run_log))
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT id FROM pgq.jobs WHERE errors->0->>'type' = 'WorkerLost'").fetchall()
    interrupted = {job_id for (job_id,) in rows}
    assert interrupted  # the victim held jobs when it died
    assert len(runs) == 400
    # Only the attempts the kill cut short (claimed or started there) may have run twice.
    assert {job_id for job_id, n in runs.items() if n > 1} <= interrupted
    assert max(runs.values()) <= 2
    logs = bouncer_workers.all_logs()
    assert "polling only (LISTEN disabled)" in logs and "wake-up=LISTEN/NOTIFY" in logs
    for bad in ("Traceback", "prepared statement", "LISTEN is not working"):
        assert bad not in logs


def test_worker_without_a_listen_url_behind_pgbouncer_polls_and_says_why(
    bouncer_dsn: str, bouncer_workers: WorkerProcesses
) -> None:
    worker = bouncer_workers("--concurrency", "4", env={**FAST, "PGQ_POLL_INTERVAL": "0.3"})
    with pgq.App(bouncer_dsn) as app:
        jobs = app.enqueue_many_sync([{"task": "noop", "args": {"n": i}} for i in range(20)])
        wait_until(lambda: all(app.get_job_sync(j.id).is_final for j in jobs), 30, "jobs run by polling")
    worker.terminate()
    assert worker.wait(30) == 0
    log = bouncer_workers.all_logs()
    assert "LISTEN is off:" in log and "connection pooler" in log and "PGQ_LISTEN_URL" in log
    assert log.count("LISTEN is off:") == 1


def test_concurrent_migrations_through_pgbouncer(empty_dsn: str, pgbouncer: int) -> None:
    """The migration lock is a transaction lock: nothing stays behind on a pooled server."""
    params = psycopg.conninfo.conninfo_to_dict(empty_dsn)
    through = psycopg.conninfo.make_conninfo(
        host="127.0.0.1", port=pgbouncer, user=params["user"], dbname=params["dbname"]
    )
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: pgq_cli("migrate", dsn=through), range(3)))
    for result in results:
        assert result.returncode == 0, result.stderr
        assert "pgq schema is at revision" in result.stdout
    with psycopg.connect(empty_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone() == (0,)
