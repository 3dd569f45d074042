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

    .venv/bin/python -m benchmarks.dependency_cost --instructions --jobs 5000

counts instructions instead (benchmarks/callgrind_server.py): the same drain on a private
cluster whose backends run under callgrind, which no other load on the machine disturbs:
at 0013, at 0014, at head, and at head with the workflows' columns, constraint, index and
trigger taken off again (what plain jobs pay for workflows now). The count of a
connection that drains one batch is taken off the count of one that drains the rest,
which leaves what the jobs cost.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
from alembic import command

from benchmarks.callgrind_server import CallgrindServer
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


def drain(conn: psycopg.Connection, batch: int, jobs: int | None = None) -> None:
    """Claim ``batch`` jobs and record their successes until none is left (or ``jobs`` are done)."""
    done = 0
    while jobs is None or done < jobs:
        claimed = conn.execute(
            QUERIES["job_claim"], {"queues": ["default"], "limit": batch, "worker_id": "bench"}
        ).fetchall()
        if not claimed:
            break
        conn.execute(QUERIES["job_record_outcomes"], _outcomes([row[0] for row in claimed]))
        done += len(claimed)


def prepare_database(
    server: CallgrindServer, name: str, revision: str, changes: Sequence[str] = (), *, fill: int = 0
) -> None:
    """A database of the callgrind server (started plain) at ``revision``, with
    ``changes`` made to it and ``fill`` ready jobs, vacuumed and checkpointed."""
    dsn = server.create_database(name)
    command.upgrade(_alembic_config(dsn), revision)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for change in changes:
            conn.execute(change)
        if fill:
            conn.execute(FILL, {"n": fill})
            conn.execute("VACUUM ANALYZE pgq.jobs")
        conn.execute("CHECKPOINT")


def drained_instructions_per_job(server: CallgrindServer, database: str, batch: int, jobs: int) -> float:
    """Backend instructions per job of draining ``database`` (filled with ``jobs`` plus
    one ``batch``): a connection that drains the rest, less one that drains one batch,
    which takes off connecting."""
    first = server.instructions(database, lambda conn: drain(conn, batch, jobs=batch))
    rest = server.instructions(database, lambda conn: drain(conn, batch))
    return (rest - first) / (jobs - batch)


def _run(server: str, revision: str, jobs: int, batch: int) -> tuple[float, float]:
    """Server CPU seconds and wall seconds per job for one drain."""
    with fresh_database(server, "pgq_depcost", migrate=False) as dsn:
        command.upgrade(_alembic_config(dsn), revision)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(FILL, {"n": jobs})
            conn.execute("VACUUM ANALYZE pgq.jobs")
            pid = conn.info.backend_pid
            cpu, start = _backend_cpu(pid), time.perf_counter()
            drain(conn, batch)
            return (_backend_cpu(pid) - cpu) / jobs, (time.perf_counter() - start) / jobs


# What the workflows added to pgq.jobs, taken off a database at head: plain jobs pay
# for workflows what head costs above this.
WITHOUT_WORKFLOWS = [
    "DROP TRIGGER jobs_settle_dependents ON pgq.jobs",
    "DROP INDEX pgq.jobs_workflow_step_idx",
    "ALTER DOMAIN pgq.job_state DROP CONSTRAINT jobs_state_valid",
    "ALTER DOMAIN pgq.job_state ADD CONSTRAINT jobs_state_valid CHECK ("
    "VALUE IN ('scheduled', 'queued', 'running', 'retrying', 'succeeded', 'failed', 'cancelled'))",
    "ALTER TABLE pgq.jobs DROP COLUMN workflow_id CASCADE, DROP COLUMN step, "
    "DROP COLUMN has_parents, DROP COLUMN has_dependents",
]
BUILDS: dict[str, tuple[str, list[str]]] = {
    "0013": ("0013", []),
    "0014": ("0014", []),
    "head": ("head", []),
    "head without workflows": ("head", WITHOUT_WORKFLOWS),
}


def _instructions(jobs: int, batch: int) -> dict[str, float]:
    """Backend instructions per job for each of BUILDS, counted by callgrind."""
    server = CallgrindServer()
    try:
        with server.plain():
            for n, (revision, changes) in enumerate(BUILDS.values()):
                prepare_database(server, f"build{n}", revision, changes, fill=jobs + batch)
        server.start_under_callgrind()
        per_job = {}
        for n, build in enumerate(BUILDS):
            per_job[build] = drained_instructions_per_job(server, f"build{n}", batch, jobs)
        return per_job
    finally:
        server.close()


def main() -> None:
    options = parse(
        __doc__,
        jobs=20_000,
        rounds=6,
        batch=(10, "jobs per claim and per outcome batch"),
        against=("0014", "the revision to compare with 0013 (0014: workflows alone; head: everything since)"),
        instructions=(False, "count the backend's instructions under callgrind instead of timing it"),
    )
    new = options.against
    if options.instructions:
        counts = _instructions(options.jobs, options.batch)
        print(f"{options.jobs:,} jobs, claim and record {options.batch} at a time: backend instructions per job")
        for build, count in counts.items():
            print(f"  {build:<24} {count:>10,.0f}")
        print(f"0014 ÷ 0013: {counts['0014'] / counts['0013']:.4f}")
        print(f"head ÷ head without workflows: {counts['head'] / counts['head without workflows']:.4f}")
        return
    server = server_dsn()
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
