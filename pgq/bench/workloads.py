"""pgq's side of the benchmark: its public API and real worker processes.

Enqueue workloads time ``app.enqueue`` / ``app.enqueue_many``. Workloads with a worker
start ``pgq worker`` processes (see ``workers``) and measure from the table: the drain
from the first job's start to the last job's finish (database clock), latencies from
the producer's clock before enqueue to the worker's clock at task start (``stamp``).
"""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import psycopg
from prometheus_client.parser import text_string_to_metric_families
from psycopg.rows import dict_row

from pgq.app import App
from pgq.bench import cpu
from pgq.bench.queries import BENCH_QUERIES
from pgq.bench.raw import drained_seconds
from pgq.bench.scenarios import measured_drain
from pgq.bench.stats import Result
from pgq.bench.workers import check_alive, worker_processes
from pgq.spec import JobSpec

_WAIT_SECONDS = 600.0


async def enqueue_one(app: App, n: int) -> Result:
    """``await app.enqueue(...)`` n times in a row: one job, one transaction per call."""
    async with cpu.Meter(app.dsn) as meter:
        start = time.perf_counter()
        for _ in range(n):
            await app.enqueue("noop")
        seconds = time.perf_counter() - start
    return Result("enqueue_one", n, seconds, extra=meter.per_job(n))


async def enqueue_bulk(app: App, n: int, batch: int) -> Result:
    """``app.enqueue_many`` in batches, specs built inside the timing like a caller would."""
    async with cpu.Meter(app.dsn) as meter:
        start = time.perf_counter()
        for offset in range(0, n, batch):
            await app.enqueue_many([JobSpec("noop", {"i": i}) for i in range(offset, min(n, offset + batch))])
        seconds = time.perf_counter() - start
    return Result("enqueue_bulk", n, seconds, note=f"batch {batch}", extra=meter.per_job(n))


async def prefill(app: App, n: int, batch: int) -> None:
    """Put n no-op jobs in the queue (untimed), for the drains."""
    for offset in range(0, n, batch):
        await app.enqueue_many([JobSpec("noop")] * (min(n, offset + batch) - offset))


async def wait_finished(dsn: str, n: int, procs: list[Any], limit: float = _WAIT_SECONDS) -> float:
    """Wait until n jobs are final (while ``procs`` live); return first start to last
    finish in seconds, by the database clock. TimeoutError after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        while True:
            finished, seconds = await drained_seconds(conn)
            if finished >= n:
                return seconds
            check_alive(procs)
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {finished} of {n} jobs finished in {limit:.0f} s")
            await asyncio.sleep(0.05)


async def drain(app: App, dsn: str, n: int, workers: int, concurrency: int, batch: int = 5000) -> Result:
    """n jobs enqueued first, then ``workers`` processes at ``concurrency`` empty the queue
    (measured like the scenarios: with CPU per job and the event loop's lag)."""
    note = f"{workers} process(es) x concurrency {concurrency}"
    return await measured_drain(app, dsn, "drain", ["noop"] * n, workers, concurrency, note, batch)


async def drain_metrics(app: App, dsn: str, n: int, workers: int, concurrency: int, batch: int, on: bool) -> Result:
    """``drain`` with each worker serving Prometheus metrics (scraped once, after the
    drain, for the event loop's lag under load) or not."""
    await prefill(app, n, batch)
    port = _free_port() if on and workers == 1 else 0
    with worker_processes(dsn, workers, concurrency, ("--metrics-port", str(port)) if on else ()) as procs:
        seconds = await wait_finished(dsn, n, procs)
        note = f"metrics on, {_loop_lag(port)}" if port else f"metrics {'on' if on else 'off'}"
    return Result(f"drain_metrics_{'on' if on else 'off'}", n, seconds, note=note)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _loop_lag(port: int) -> str:
    """The worker's event-loop lag during the drain, from its histogram: the bucket that
    holds the 99th percentile, and the slowest bucket used."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    buckets = [
        (float(s.labels["le"]), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "pgq_worker_event_loop_lag_seconds_bucket"
    ]
    total = max((count for _, count in buckets), default=0.0)
    if not total:
        return "no loop lag sample"
    p99 = next(le for le, count in buckets if count >= 0.99 * total)
    worst = next(le for le, count in buckets if count >= total)
    return f"loop lag p99 <= {p99 * 1000:g} ms, max <= {worst * 1000:g} ms ({total:.0f} samples)"


async def _stamps(dsn: str) -> list[dict[str, float]]:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(BENCH_QUERIES["bench_stamp_results"])
        return await cur.fetchall()


async def _warm_up(app: App, dsn: str, procs: list[Any]) -> None:
    """Enqueue one job and wait for it: the worker processes are up and listening."""
    await app.enqueue("noop")
    await wait_finished(dsn, 1, procs)


async def wakeup_latency(app: App, dsn: str, samples: int, spacing: float) -> Result:
    """An idle worker (one process), one job at a time: enqueue → task start."""
    with worker_processes(dsn, 1, 10) as procs:
        await _warm_up(app, dsn, procs)
        for _ in range(samples):
            await app.enqueue("stamp", {"enqueued_at": time.time()})
            await asyncio.sleep(spacing)
        await wait_finished(dsn, samples + 1, procs)
    rows = await _stamps(dsn)
    latencies = tuple((r["started_at"] - r["enqueued_at"]) * 1000 for r in rows)
    return Result("wakeup_latency", len(rows), sum(latencies) / 1000, latencies)


STEADY_WARM_UP_SECONDS = 1.0
"""Untimed seconds at the steady rate first: the producer's pool grows to the
connections the rate needs, as a running service's has, before anything is timed."""


async def _paced(app: App, rate: float, total: int, task: str, args: Callable[[], dict[str, Any]]) -> float:
    """Enqueue ``total`` jobs at ``rate`` per second (each enqueue its own task, so a
    slow one does not delay the next); the seconds it took."""
    pending: list[asyncio.Task[Any]] = []
    start = time.perf_counter()
    for i in range(total):
        if (delay := start + i / rate - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        pending.append(asyncio.create_task(app.enqueue(task, args())))
    await asyncio.gather(*pending)
    return time.perf_counter() - start


async def steady(app: App, dsn: str, rate: float, duration: float, workers: int, concurrency: int) -> Result:
    """A producer enqueueing one job at a time at a fixed rate for a fixed time, after
    an untimed warm-up at that rate: enqueue → finish."""
    total = max(1, round(rate * duration))
    warm = max(1, round(rate * STEADY_WARM_UP_SECONDS))
    with worker_processes(dsn, workers, concurrency) as procs:
        await _warm_up(app, dsn, procs)
        await _paced(app, rate, warm, "noop", dict)
        produced_in = await _paced(app, rate, total, "stamp", lambda: {"enqueued_at": time.time()})
        await wait_finished(dsn, 1 + warm + total, procs)
    rows = await _stamps(dsn)
    latencies = tuple((r["finished_at"] - r["enqueued_at"]) * 1000 for r in rows)
    return Result(
        "steady", len(rows), produced_in, latencies, note=f"target {rate:g} jobs/s for {duration:g} s, enqueue → finish"
    )
