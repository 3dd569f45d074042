"""Enqueue from SQL against the Python API: one job per call, each its own transaction.

Interleaved rounds, on one throwaway database, of the same job (a task name and a small
JSON object of arguments) enqueued one call at a time by:

- ``python``: ``await app.enqueue(...)`` (the App's pool, one connection, autocommit);
- ``sql-psycopg``: ``SELECT pgq.enqueue(%s, %s)`` on a psycopg autocommit connection;
- ``sql-asyncpg``: ``SELECT pgq.enqueue($1, $2::jsonb)`` on an asyncpg connection.

Each is one round trip per job. Prints jobs per second per way (the median of the
rounds) and each SQL way as a ratio to ``python`` (above 1: faster).

    .venv/bin/python -m benchmarks.sql_enqueue [--calls 2000] [--rounds 5] [--json]

DATABASE_URL's server (default: local 127.0.0.1:5432 as postgres).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from collections.abc import Awaitable, Callable

import asyncpg
import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb

import pgq
from pgq.bench.database import fresh_database

_ARGS = {"to": "someone@example.com", "order_id": 12345, "lines": [1, 2, 3]}
WAYS = ("python", "sql-psycopg", "sql-asyncpg")

Enqueue = Callable[[int], Awaitable[object]]


async def _timed(enqueue: Enqueue, calls: int) -> float:
    await enqueue(-1)  # warm-up: the first call plans (and prepares) the statement
    started = time.perf_counter()
    for i in range(calls):
        await enqueue(i)
    return calls / (time.perf_counter() - started)


async def _round(dsn: str, way: str, calls: int) -> float:
    if way == "python":
        async with pgq.App(dsn, pool_max_size=1) as app:
            return await _timed(lambda i: app.enqueue("send_email", {**_ARGS, "i": i}), calls)
    if way == "sql-psycopg":
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            query = "SELECT pgq.enqueue(%s, %s)"
            return await _timed(lambda i: conn.execute(query, ("send_email", Jsonb({**_ARGS, "i": i}))), calls)
    info = conninfo_to_dict(dsn)
    connection = await asyncpg.connect(
        host=info.get("host"), port=int(str(info.get("port", 5432))), user=info.get("user"), database=info["dbname"]
    )
    try:
        query = "SELECT pgq.enqueue($1, $2::jsonb)"
        return await _timed(lambda i: connection.fetchval(query, "send_email", json.dumps({**_ARGS, "i": i})), calls)
    finally:
        await connection.close()


async def _run(dsn: str, calls: int, rounds: int) -> dict[str, float]:
    rates: dict[str, list[float]] = {way: [] for way in WAYS}
    for _ in range(rounds):
        for way in WAYS:
            rates[way].append(await _round(dsn, way, calls))
    medians = {way: statistics.median(r) for way, r in rates.items()}
    result = {f"{way}_jobs_per_s": round(rate, 1) for way, rate in medians.items()}
    for way in WAYS[1:]:
        result[f"{way}_over_python"] = round(medians[way] / medians["python"], 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="jobs per way and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    server = os.environ.get("DATABASE_URL") or "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
    with fresh_database(server, "pgq_sql_enqueue") as dsn:
        result = asyncio.run(_run(dsn, args.calls, args.rounds))
    if args.json:
        print(json.dumps(result))
        return
    for way in WAYS:
        ratio = "" if way == "python" else f"  ({result[f'{way}_over_python']} of python)"
        print(f"{way:<12}: {result[f'{way}_jobs_per_s']:>8} jobs/s{ratio}")


if __name__ == "__main__":
    main()
