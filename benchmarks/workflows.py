"""Workflows: what a fan-in costs its parents, and how soon a join fires.

    .venv/bin/python -m benchmarks.workflows --jobs 10000 --rounds 3

Each round runs three workloads, each in a fresh database, with --workers `pgq worker`
processes of the bench app (no-op tasks) at --concurrency:

- plain: --jobs no-op jobs without dependencies (``enqueue_many``);
- fan-in: the same jobs as one workflow, ``chain(group(10,000 steps), callback)``: every
  job is a parent of the callback, so each completion also counts down the callback's
  row (the jobs_settle_dependents trigger) — the most contended join there is;
- joins: --joins workflows of --parents parents and a callback each, one at a time (each
  waited for before the next), for the distribution of join latencies on a worker that
  is not busy with other jobs.

Reported: the drain rate of plain and fan-in (first start to last finish of the --jobs
jobs, database clock) and their ratio, the time to enqueue each, and the join latency:
the callback's start minus its last parent's finish (the start of the transaction that
recorded it, so the latency includes that commit, the NOTIFY and the claim), p50/p99.
Plain and fan-in alternate which goes first from round to round.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import psycopg

from benchmarks.command_line import parse, server_dsn
from pgq.app import App
from pgq.bench.database import fresh_database
from pgq.bench.workers import worker_processes
from pgq.bench.workloads import wait_finished
from pgq.canvas import Step, chain, group
from pgq.spec import JobSpec

JOIN_LATENCY = """
SELECT extract(epoch FROM c.started_at - max(p.finished_at))::float8 * 1000 AS ms
FROM pgq.jobs AS c
JOIN pgq.job_parents AS e ON e.job_id = c.id
JOIN pgq.jobs AS p ON p.id = e.parent_id
WHERE c.state = 'succeeded'
GROUP BY c.id, c.started_at
"""
PARENTS_DRAIN = """
SELECT extract(epoch FROM max(finished_at) - min(started_at))::float8
FROM pgq.jobs WHERE NOT has_parents
"""


def _fan_in(jobs: int) -> Any:
    return chain(group(*(Step("noop") for _ in range(jobs))), Step("noop", name="callback"))


async def _measure(server: str, kind: str, jobs: int, options: Any) -> dict[str, Any]:
    with fresh_database(server, f"pgq_wf_{kind}") as dsn:
        async with App(dsn) as app:
            start = time.perf_counter()
            if kind == "plain":
                total = jobs
                await app.enqueue_many([JobSpec("noop") for _ in range(jobs)])
            elif kind == "fan_in":
                total = jobs + 1
                await app.enqueue_workflow(_fan_in(jobs), name="fan-in")
            else:
                return await _sequential_joins(app, dsn, options)
            enqueued = time.perf_counter() - start
        with worker_processes(dsn, options.workers, options.concurrency) as procs:
            await wait_finished(dsn, total, procs)
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            drain = (await (await conn.execute(PARENTS_DRAIN)).fetchone() or [0.0])[0]
            latencies = [row[0] for row in await (await conn.execute(JOIN_LATENCY)).fetchall()]
    return {"enqueue_s": enqueued, "drain_s": drain, "latencies_ms": latencies}


async def _sequential_joins(app: App, dsn: str, options: Any) -> dict[str, Any]:
    """One small fan-in at a time, each waited for: the join latency of an idle worker,
    not the time a ready callback queues behind other work."""
    with worker_processes(dsn, options.workers, options.concurrency) as procs:
        await wait_finished(dsn, 0, procs)
        for _ in range(options.joins):
            workflow = await app.enqueue_workflow(_fan_in(options.parents), name="join")
            await workflow.wait(timeout=60)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        latencies = [row[0] for row in await (await conn.execute(JOIN_LATENCY)).fetchall()]
    return {"enqueue_s": 0.0, "drain_s": 0.0, "latencies_ms": latencies}


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


async def main() -> None:
    options = parse(
        __doc__,
        jobs=(10_000, "parents of the fan-in (and plain jobs)"),
        rounds=3,
        workers=1,
        concurrency=10,
        joins=(100, "small workflows, one at a time, for the join-latency distribution"),
        parents=(10, "parents per small workflow"),
    )
    server = server_dsn()
    runs: dict[str, list[dict[str, Any]]] = {"plain": [], "fan_in": [], "joins": []}
    for r in range(options.rounds):
        order = ["plain", "fan_in"] if r % 2 == 0 else ["fan_in", "plain"]
        for kind in [*order, "joins"]:
            runs[kind].append(await _measure(server, kind, options.jobs, options))
            print(f"round {r + 1} {kind} done", flush=True)
    rate = {k: statistics.median(options.jobs / run["drain_s"] for run in runs[k]) for k in ("plain", "fan_in")}
    enqueue = {k: statistics.median(run["enqueue_s"] for run in runs[k]) for k in ("plain", "fan_in")}
    print(f"\n{options.jobs:,} jobs, {options.workers} worker(s) x {options.concurrency}, medians of {options.rounds}")
    print(f"plain   drain {rate['plain']:8.0f} jobs/s   enqueue {enqueue['plain']:.2f} s (enqueue_many)")
    print(f"fan-in  drain {rate['fan_in']:8.0f} jobs/s   enqueue {enqueue['fan_in']:.2f} s (one workflow)")
    print(f"fan-in ÷ plain drain rate: {rate['fan_in'] / rate['plain']:.2f}")
    big = [ms for run in runs["fan_in"] for ms in run["latencies_ms"]]
    small = [ms for run in runs["joins"] for ms in run["latencies_ms"]]
    print(f"join latency, {options.jobs:,}-parent fan-in: {', '.join(f'{ms:.1f}' for ms in big)} ms (one per round)")
    print(
        f"join latency, {len(small)} joins of {options.parents}: p50 {_pct(small, 50):.1f} ms, "
        f"p99 {_pct(small, 99):.1f} ms, max {max(small, default=float('nan')):.1f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
