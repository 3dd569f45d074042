"""What pgq.jobs' checks cost PostgreSQL per job: revision 0017 (twelve CHECK
constraints on the table) against head (the single-column ones as domains, 0018).

    .venv/bin/python -m benchmarks.constraint_cost --jobs 1000

PostgreSQL plans every CHECK constraint of a table again for each statement that
writes to it; a domain's constraint is planned once per session and checked only when a
column of that type is written. This counts the backend's instructions per job under
callgrind (benchmarks/callgrind_server.py), so a busy machine does not move it, for the
writes that matter: one job per INSERT (``app.enqueue``), COPY in batches of 200
(``enqueue_many``), and the worker's claim and outcome statements one job and ten jobs
at a time. Each count is that of a connection doing the work less that of a connection
doing none (or one batch), which takes off connecting.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
from psycopg.types.json import Jsonb

from benchmarks.callgrind_server import CallgrindServer
from benchmarks.command_line import parse
from benchmarks.dependency_cost import drained_instructions_per_job, prepare_database

REVISIONS = ("0017", "head")
WORKLOADS = ("insert one per statement", "copy 200 per statement", "claim and record 1", "claim and record 10")


def _insert_one_by_one(jobs: int) -> Callable[[psycopg.Connection], None]:
    def run(conn: psycopg.Connection) -> None:
        for i in range(jobs):
            conn.execute(
                "INSERT INTO pgq.jobs (queue, task, args) VALUES (%s, %s, %s)", ["default", "noop", Jsonb({"i": i})]
            )

    return run


def _copy(jobs: int) -> Callable[[psycopg.Connection], None]:
    def run(conn: psycopg.Connection) -> None:
        for _ in range(jobs // 200):
            with conn.cursor().copy("COPY pgq.jobs (queue, task, args) FROM STDIN") as copy:
                for i in range(200):
                    copy.write_row(("default", "noop", f'{{"i": {i}}}'))

    return run


def _count(server: CallgrindServer, database: str, workload: str, jobs: int) -> float:
    if workload.startswith("claim"):
        return drained_instructions_per_job(server, database, int(workload.rsplit(" ", 1)[1]), jobs)
    run = _insert_one_by_one(jobs) if workload.startswith("insert") else _copy(jobs)
    return (server.instructions(database, run) - server.instructions(database, lambda conn: None)) / jobs


def main() -> None:
    options = parse(__doc__, jobs=1000)
    server = CallgrindServer()
    names = {(r, w): f"r{r}_{n}" for r in REVISIONS for n, w in enumerate(WORKLOADS)}
    try:
        with server.plain():
            for (revision, workload), name in names.items():
                fill = options.jobs + 10 if workload.startswith("claim") else 0
                prepare_database(server, name, revision, fill=fill)
        server.start_under_callgrind()
        counts = {key: _count(server, name, key[1], options.jobs) for key, name in names.items()}
    finally:
        server.close()
    print(f"{options.jobs:,} jobs: backend instructions per job")
    print(f"  {'workload':<26} {'0017':>10} {'head':>10} {'head ÷ 0017':>12}")
    for workload in WORKLOADS:
        old, new = counts[("0017", workload)], counts[("head", workload)]
        print(f"  {workload:<26} {old:>10,.0f} {new:>10,.0f} {new / old:>12.3f}")


if __name__ == "__main__":
    main()
