"""What an enqueue costs the caller's process, in instructions per call, step by step
from the bare INSERT up to ``app.enqueue``; and per job for ``enqueue_many``.

    .venv/bin/python -m benchmarks.client_instructions
    PYTHONPATH=/path/to/old/checkout .venv/bin/python -m benchmarks.client_instructions

Each step runs in a Python process of its own under valgrind's callgrind, twice (a few
calls, then many more), and the difference is divided by the extra calls, which takes
off starting Python and connecting. Instructions do not move with the machine's load,
so two builds can be compared to a fraction of a percent where their timed rates differ
by 10-20 % from run to run. The database is the server of DATABASE_URL (a fresh
database, dropped at the end); its side is not counted here (``constraint_cost.py``
counts the backend's).

The steps (each includes the ones above it):

- ``raw``: the bench's raw ceiling, a two-column INSERT on one connection, nothing back;
- ``statement``: pgq's ``job_insert_ready`` with its six parameters through a
  ``dict_row`` cursor, reading ``id`` and ``created_at`` back;
- ``operation``: the same through the query layer (``pgq.db.enqueue``), which builds the
  returned ``Job``; the job validated once, before the loop;
- ``validated``: validation on every call as well;
- ``app.run``: the operation through the App's pool (``App.run``), validated once;
- ``app.enqueue``: the public call, ``await app.enqueue("noop")``;
- ``enqueue_many``: ``await app.enqueue_many`` of 1,000 ``JobSpec`` per call, per job.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

import pgq
from benchmarks.command_line import parse, server_dsn
from pgq import App, _times
from pgq._queries import QUERIES
from pgq.bench.database import fresh_database
from pgq.bench.queries import BENCH_QUERIES
from pgq.db import driver, enqueue
from pgq.spec import JobSpec, NewJob

STEPS = ("raw", "statement", "operation", "validated", "app.run", "app.enqueue", "enqueue_many")
BATCH = 1_000


async def _run_step(step: str, calls: int, dsn: str) -> None:
    app = App(dsn)

    @app.task
    async def noop(**kwargs: Any) -> None:
        return None

    async with app:
        new = app._validate(JobSpec("noop"))
        async with await _connection(dsn) as conn:
            work = _step(step, app, conn, new)
            for _ in range(calls):
                await work()


async def _connection(dsn: str) -> psycopg.AsyncConnection[Any]:
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    _times.make_total(conn)  # as on the App's pooled connections
    return conn


def _step(step: str, app: App, conn: psycopg.AsyncConnection[Any], new: NewJob) -> Callable[[], Awaitable[Any]]:
    async def raw() -> None:
        await conn.execute(BENCH_QUERIES["bench_raw_insert"], {"task": "noop", "args": Jsonb({})})

    async def statement() -> None:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(QUERIES["job_insert_ready"], enqueue.insert_ready_params(new))
            await cur.fetchall()

    async def operation() -> None:
        await driver.run_async(conn, enqueue.insert_job(new))

    async def validated() -> None:
        await driver.run_async(conn, enqueue.insert_job(app._validate(JobSpec("noop"))))

    async def through_app() -> None:
        await app.run(enqueue.insert_job(new))

    async def public() -> None:
        await app.enqueue("noop")

    async def many() -> None:
        await app.enqueue_many([JobSpec("noop", {"i": i}) for i in range(BATCH)])

    steps = dict(zip(STEPS, (raw, statement, operation, validated, through_app, public, many), strict=True))
    return steps[step]


def _instructions(step: str, calls: int, dsn: str) -> int:
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    command += [sys.executable, "-m", "benchmarks.client_instructions", "--step", step, "--calls", str(calls)]
    command += ["--dsn", dsn]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no count for {step}: {out.stderr[-500:]}")
    return int(found.group(1))


def main() -> None:
    options = parse(__doc__, calls=1_000, steps=(",".join(STEPS), "comma-separated"), step="", dsn="")
    if options.step:  # one measured process, under callgrind
        asyncio.run(_run_step(options.step, options.calls, options.dsn))
        return
    print(f"pgq from {os.path.dirname(pgq.__file__)}; client instructions per call (per job for enqueue_many)")
    with fresh_database(server_dsn(), "pgq_client_instructions") as dsn:
        base: float | None = None
        for step in options.steps.split(","):
            if step not in STEPS:
                raise SystemExit(f"unknown step {step!r}; steps: {', '.join(STEPS)}")
            calls = max(1, options.calls // 100) if step == "enqueue_many" else options.calls
            few = _instructions(step, max(1, calls // 10), dsn)
            many = _instructions(step, calls + max(1, calls // 10), dsn)
            per = (many - few) / calls / (BATCH if step == "enqueue_many" else 1)
            if step == "raw":
                base = per
            shown = "" if step == "enqueue_many" or base is None else f"{per / base:8.2f} × raw"
            print(f"  {step:<14} {per:>10,.0f} {shown}")


if __name__ == "__main__":
    main()
