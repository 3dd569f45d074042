"""The steady producer and the idle wake-up, with CPU per job: the worker's NOTIFY path A/B.

Interleaved rounds in one database, each with a fresh ``pgq worker`` process (the bench
app) under one of two settings of the worker's due-check gap (``pgq.worker.pacing
.DUE_RECHECK``): ``0`` is the behaviour before it (a due check, one more round trip, on
every NOTIFY) and ``0.05`` the default. Per round: ``--rate`` jobs/s for ``--duration``
seconds, each enqueued by ``app.enqueue`` in a task of its own (enqueue → task start
and → finish, from the producer's clock to the worker's / the database's), then
``--samples`` jobs one at a time to the idle worker (enqueue → task start), and the
CPU time per job of the worker process and of the database's backends (``/proc``;
the producer's backend included) and the transactions committed per job in the
database (``pg_stat_database``: the producer's, the worker's and its heartbeat's, not
this script's reads) during the steady part. Medians of the rounds per setting.

    .venv/bin/python -m benchmarks.steady_wakeup [--rounds 4] [--rate 200] [--duration 5] [--samples 100] [--json]

DATABASE_URL's server (default: local 127.0.0.1:5432 as postgres).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from typing import Any

import psycopg

import pgq
from benchmarks import command_line
from pgq.bench import cpu
from pgq.bench.database import fresh_database
from pgq.bench.queries import BENCH_QUERIES
from pgq.bench.scenarios import _backends, _wait_registered
from pgq.bench.workers import worker_processes
from pgq.worker import pacing

SETTINGS = (0.0, pacing.DUE_RECHECK)
_COMMITS = "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _stamps(conn: psycopg.AsyncConnection[Any], since: float) -> list[tuple[float, float, float]]:
    rows = await (await conn.execute(BENCH_QUERIES["bench_stamp_results"])).fetchall()
    return [(e, s, f) for e, s, f in rows if e >= since]


async def _commits(conn: psycopg.AsyncConnection[Any]) -> int:
    """Transactions committed in this database so far, after the backends' statistics
    are flushed (an idle backend flushes within a second)."""
    await asyncio.sleep(1.5)
    row = await (await conn.execute(_COMMITS)).fetchone()
    return int(row[0]) if row else 0


async def _wait_stamps(conn: psycopg.AsyncConnection[Any], since: float, n: int) -> tuple[list[Any], int]:
    """The stamps of the n jobs enqueued since ``since`` once all have run, and the
    reads it took (each one transaction of this connection)."""
    reads = 0
    while True:
        reads += 1
        if len(rows := await _stamps(conn, since)) >= n:
            return rows, reads
        await asyncio.sleep(0.02)


async def _round(app: pgq.App, dsn: str, gap: float, rate: float, duration: float, samples: int) -> dict[str, float]:
    env_gap = {"PGQ_BENCH_DUE_RECHECK": str(gap)}
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(BENCH_QUERIES["bench_jobs_reset"])
        with worker_processes(dsn, 1, 10, (), env=env_gap, module="benchmarks.steady_wakeup") as procs:
            await _wait_registered(conn, procs)
            await app.enqueue("stamp", {"enqueued_at": time.time()})  # warm: claims, outcome, pools
            committed = await _commits(conn)
            workers_before = cpu.sample(p.pid for p in procs)
            backends_before = cpu.sample(await _backends(conn))
            began = time.time()
            total = round(rate * duration)
            pending: list[asyncio.Task[Any]] = []
            start = time.perf_counter()
            for i in range(total):
                if (delay := start + i / rate - time.perf_counter()) > 0:
                    await asyncio.sleep(delay)
                pending.append(asyncio.create_task(app.enqueue("stamp", {"enqueued_at": time.time()})))
            await asyncio.gather(*pending)
            steady, reads = await _wait_stamps(conn, began, total)
            workers_cpu = cpu.used(workers_before, cpu.sample(p.pid for p in procs))
            postgres_cpu = cpu.used(backends_before, cpu.sample(await _backends(conn)))
            # Less this connection's own: the reads, the backends lookup, the first count.
            commits = await _commits(conn) - committed - reads - 2
            idle_began = time.time()
            for _ in range(samples):
                await app.enqueue("stamp", {"enqueued_at": time.time()})
                await asyncio.sleep(0.02)
            idle, _ = await _wait_stamps(conn, idle_began, samples)
    to_finish = [(f - e) * 1000 for e, _, f in steady]
    to_start = [(s - e) * 1000 for e, s, _ in steady]
    wakeup = [(s - e) * 1000 for e, s, _ in idle]
    return {
        "steady_finish_p50_ms": statistics.median(to_finish),
        "steady_finish_p99_ms": _percentile(to_finish, 0.99),
        "steady_start_p99_ms": _percentile(to_start, 0.99),
        "steady_max_ms": max(to_finish),
        "wakeup_p50_ms": statistics.median(wakeup),
        "wakeup_p99_ms": _percentile(wakeup, 0.99),
        "worker_cpu_us_per_job": cpu.per_job_us(workers_cpu, total) or 0.0,
        "postgres_cpu_us_per_job": cpu.per_job_us(postgres_cpu, total) or 0.0,
        "commits_per_job": commits / total,
    }


async def _run(dsn: str, rounds: int, rate: float, duration: float, samples: int) -> dict[str, dict[str, float]]:
    results: dict[float, list[dict[str, float]]] = {gap: [] for gap in SETTINGS}
    async with pgq.App(dsn) as app:
        for i in range(rounds):
            for gap in SETTINGS if i % 2 == 0 else SETTINGS[::-1]:
                results[gap].append(await _round(app, dsn, gap, rate, duration, samples))
    return {
        f"due_recheck_{gap:g}": {k: round(statistics.median(r[k] for r in runs), 2) for k in runs[0]}
        for gap, runs in results.items()
    }


def worker() -> None:
    """The bench worker (``pgq.bench.worker_main``) with the due-check gap of this round."""
    from pgq.bench import worker_main

    pacing.DUE_RECHECK = float(os.environ["PGQ_BENCH_DUE_RECHECK"])
    worker_main.main()


def main() -> None:
    if "--worker" in sys.argv:
        sys.argv.remove("--worker")
        worker()
        return
    args = command_line.parse(
        __doc__, rounds=4, rate=200.0, duration=5.0, samples=(100, "idle wake-ups per round"), json=False
    )
    with fresh_database(command_line.server_dsn(), "pgq_steady") as dsn:
        result = asyncio.run(_run(dsn, args.rounds, args.rate, args.duration, args.samples))
    if args.json:
        print(json.dumps(result))
        return
    names = list(result)
    print(f"{'median of ' + str(args.rounds) + ' rounds':28}" + "".join(f"{n:>20}" for n in names))
    for key in result[names[0]]:
        print(f"{key:28}" + "".join(f"{result[n][key]:>20}" for n in names))


if __name__ == "__main__":
    main()
