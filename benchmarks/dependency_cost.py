"""What jobs without dependencies pay for workflows on the claim and completion path.

    .venv/bin/python -m benchmarks.dependency_cost --jobs 20000 --rounds 6

Workflows (migration 0014) added columns, CHECK constraints, partial indexes and a row
trigger (whose WHEN clause reads ``has_dependents``) to pgq.jobs. This runs the
worker's own claim and outcome statements (``job_claim``, ``job_record_outcomes``,
the same text at both revisions) against a database at revision 0013 and one at --against (0014, the workflows),
alternating, in fresh databases: insert --jobs jobs, then claim --batch and record
their successes until none is left, on one connection. It reports the server backend's
CPU time per job (utime + stime of the backend process, from /proc: the server must run
on this machine), which a busy machine disturbs far less than wall time, and the wall
time per job, as medians, with the ratio to 0013.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import psycopg
from alembic import command

from benchmarks.command_line import parse, server_dsn
from pgq._queries import QUERIES
from pgq.bench.database import fresh_database
from pgq.migrate import _alembic_config

FILL = "INSERT INTO pgq.jobs (task) SELECT 'noop' FROM generate_series(1, %(n)s)"
_TICKS = 100  # os.sysconf("SC_CLK_TCK") on Linux


def _backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def _outcomes(ids: list[int]) -> dict[str, Any]:
    n = len(ids)
    return {
        "worker_id": "bench",
        "ids": ids,
        "attempts": [1] * n,
        "kinds": ["succeeded"] * n,
        "results": ["null"] * n,
        "errors": [None] * n,
        "retry_in": [None] * n,
        "percents": [None] * n,
        "messages": [None] * n,
    }


def _run(server: str, revision: str, jobs: int, batch: int) -> tuple[float, float]:
    """Server CPU seconds and wall seconds per job for one drain."""
    with fresh_database(server, "pgq_depcost", migrate=False) as dsn:
        command.upgrade(_alembic_config(dsn), revision)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(FILL, {"n": jobs})
            conn.execute("VACUUM ANALYZE pgq.jobs")
            pid = conn.info.backend_pid
            cpu, start = _backend_cpu(pid), time.perf_counter()
            while True:
                claimed = conn.execute(
                    QUERIES["job_claim"], {"queues": ["default"], "limit": batch, "worker_id": "bench"}
                ).fetchall()
                if not claimed:
                    break
                conn.execute(QUERIES["job_record_outcomes"], _outcomes([row[0] for row in claimed]))
            return (_backend_cpu(pid) - cpu) / jobs, (time.perf_counter() - start) / jobs


def main() -> None:
    options = parse(
        __doc__,
        jobs=20_000,
        rounds=6,
        batch=(10, "jobs per claim and per outcome batch"),
        against=("0014", "the revision to compare with 0013 (0014: workflows alone; head: everything since)"),
    )
    server = server_dsn()
    new = options.against
    runs: dict[str, list[tuple[float, float]]] = {"0013": [], new: []}
    for r in range(options.rounds):
        for revision in ("0013", new) if r % 2 == 0 else (new, "0013"):
            runs[revision].append(_run(server, revision, options.jobs, options.batch))
            used, took = runs[revision][-1]
            print(f"round {r + 1} {revision}: {used * 1e6:.1f} us server CPU, {took * 1e6:.1f} us wall per job")
    cpu = {k: statistics.median(c for c, _ in v) for k, v in runs.items()}
    wall = {k: statistics.median(w for _, w in v) for k, v in runs.items()}
    print(f"\nmedians of {options.rounds}, {options.jobs:,} jobs, claim and record {options.batch} at a time")
    print(
        f"server CPU per job: 0013 {cpu['0013'] * 1e6:.1f} us, {new} {cpu[new] * 1e6:.1f} us, "
        f"{new} ÷ 0013 {cpu[new] / cpu['0013']:.3f}"
    )
    print(
        f"wall time per job:  0013 {wall['0013'] * 1e6:.1f} us, {new} {wall[new] * 1e6:.1f} us, "
        f"{new} ÷ 0013 {wall[new] / wall['0013']:.3f}"
    )


if __name__ == "__main__":
    main()
