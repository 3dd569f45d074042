"""A database outage longer than the rescue lease: finished jobs are recorded, not re-run."""

from __future__ import annotations

import collections
import time
from typing import Any

import psycopg
import pytest

import pgq
from pgq.migrate import migrate
from tests.faults import FAST
from tests.helpers import WorkerProcesses, read_runs, wait_until

pytestmark = pytest.mark.slow


def _state(dsn: str, job_id: int) -> tuple[str, int, int] | None:
    try:
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            row = conn.execute(
                "SELECT state, attempt, jsonb_array_length(errors) FROM pgq.jobs WHERE id = %s", (job_id,)
            ).fetchone()
    except psycopg.OperationalError:
        return None
    assert row is not None
    return str(row[0]), int(row[1]), int(row[2])


def test_job_finished_during_an_outage_longer_than_the_rescue_lease_runs_once(
    private_server: Any, start_worker: WorkerProcesses
) -> None:
    from pgserver import _commands

    pg_ctl = getattr(_commands, "pg_ctl")  # noqa: B009 - made at import time, invisible to mypy
    info = private_server.get_postmaster_info()
    dsn = psycopg.conninfo.make_conninfo(host=str(info.socket_dir), port=int(info.port), user="postgres")
    migrate(dsn)
    start_worker.dsn = dsn
    rescue_after = 2.0
    with pgq.App(dsn) as app:
        jobs = [app.enqueue_sync("sleepy", {"seconds": 1.0}).id for _ in range(3)]
    # Two workers: whichever leads, the jobs of both are judged after the outage.
    for _ in range(2):
        start_worker("--concurrency", "2", env={**FAST, "PGQ_RESCUE_AFTER": str(rescue_after)})
    wait_until(lambda: all(_state(dsn, j) == ("running", 1, 0) for j in jobs), 60, "the jobs running")
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=private_server.pgdata, user=private_server.system_user)
    time.sleep(3 * rescue_after)  # the jobs finish meanwhile; their outcomes wait in the completers
    options = ["-o", '-h ""', "-o", f"-k {info.socket_dir}", "-o", f"-p {info.port}"]
    pg_ctl(
        ["-w", *options, "-l", str(private_server.log), "start"],
        pgdata=private_server.pgdata,
        user=private_server.system_user,
    )
    wait_until(lambda: all((_state(dsn, j) or ("",))[0] == "succeeded" for j in jobs), 60, "the jobs succeeded")
    time.sleep(rescue_after)  # a rescue that came late would show now
    assert [_state(dsn, j) for j in jobs] == [("succeeded", 1, 0)] * 3  # no rescue, no second attempt
    runs = collections.Counter(read_runs(start_worker.run_log))
    assert sorted(runs) == sorted(jobs) and max(runs.values()) == 1
    log = start_worker.all_logs()
    assert "database reachable again" in log and "rescue held back" in log and "rescued" not in log
