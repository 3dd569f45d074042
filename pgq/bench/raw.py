"""The raw-SQL ceiling: the same work as pgq's workloads, as bare SQL on the same table.

No validation, no Job objects, no pool: what Postgres and one psycopg connection allow
on this machine. pgq's figures are reported as a fraction of these.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from pgq._queries import QUERIES
from pgq.bench import cpu
from pgq.bench.queries import BENCH_QUERIES
from pgq.bench.stats import Result


async def _connect(dsn: str) -> psycopg.AsyncConnection[tuple[Any, ...]]:
    return await psycopg.AsyncConnection.connect(dsn, autocommit=True)


async def insert_one(dsn: str, n: int) -> Result:
    """One INSERT per round trip (each its own transaction), like enqueue one-per-call."""
    async with await _connect(dsn) as conn, cpu.Meter(dsn) as meter:
        start = time.perf_counter()
        for _ in range(n):
            await conn.execute(BENCH_QUERIES["bench_raw_insert"], {"task": "noop", "args": Jsonb({})})
        seconds = time.perf_counter() - start
    return Result("raw_insert_one", n, seconds, extra=meter.per_job(n))


async def copy_many(dsn: str, n: int, batch: int) -> Result:
    """Binary COPY of ``batch`` rows per statement, like enqueue_many."""
    async with await _connect(dsn) as conn, cpu.Meter(dsn) as meter:
        start = time.perf_counter()
        for offset in range(0, n, batch):
            async with conn.cursor() as cur, cur.copy(BENCH_QUERIES["bench_raw_copy"]) as copy:
                copy.set_types(["text", "jsonb"])
                for i in range(offset, min(n, offset + batch)):
                    await copy.write_row(("noop", Jsonb({"i": i})))
        seconds = time.perf_counter() - start
    return Result("raw_copy", n, seconds, extra=meter.per_job(n))


async def drained_seconds(conn: psycopg.AsyncConnection[Any]) -> tuple[int, float]:
    """Finished jobs, and seconds from the first start to the last finish (DB clock)."""
    row = await (await conn.execute(BENCH_QUERIES["bench_drain_progress"])).fetchone()
    assert row is not None
    return int(row[0]), float(row[1] or 0.0)


async def _claim_complete_loop(dsn: str, batch: int, loop_id: int) -> None:
    async with await _connect(dsn) as conn:
        while True:
            cur = await conn.execute(BENCH_QUERIES["bench_raw_claim"], {"limit": batch, "worker_id": f"raw-{loop_id}"})
            ids = [row[0] for row in await cur.fetchall()]
            if not ids:
                return
            await conn.execute(BENCH_QUERIES["bench_raw_complete"], {"ids": ids})


async def claim_complete(dsn: str, n: int, loops: int, batch: int) -> Result:
    """``loops`` connections, each claiming up to ``batch`` jobs then completing them in
    one UPDATE, until the ``n`` jobs already in the table are done."""
    await asyncio.gather(*(_claim_complete_loop(dsn, batch, i) for i in range(loops)))
    async with await _connect(dsn) as conn:
        finished, seconds = await drained_seconds(conn)
    return Result("raw_claim_complete", finished, seconds, note=f"{loops} connection(s), batch {batch}")


async def wakeup(dsn: str, samples: int, spacing: float) -> Result:
    """LISTEN on one connection, INSERT on another: from before the INSERT until the
    listener has claimed the row it was notified about."""
    latencies: list[float] = []
    async with await _connect(dsn) as listener, await _connect(dsn) as producer:
        await listener.execute(QUERIES["worker_listen"])
        for _ in range(samples):
            sent = time.perf_counter()
            await producer.execute(BENCH_QUERIES["bench_raw_insert"], {"task": "raw", "args": Jsonb({})})
            # notifies() holds the connection until it stops: claim after it, not inside.
            notified = [n async for n in listener.notifies(timeout=5, stop_after=1)]
            cur = await listener.execute(BENCH_QUERIES["bench_raw_claim"], {"limit": 1, "worker_id": "raw"})
            if notified and await cur.fetchall():
                latencies.append((time.perf_counter() - sent) * 1000)
            await asyncio.sleep(spacing)
    return Result("raw_wakeup", len(latencies), sum(latencies) / 1000, tuple(latencies))
