"""What prepared statements are worth to pgq on a direct connection (PGQ_PREPARED_STATEMENTS).

Interleaved rounds of the producer's per-call statements (enqueue, get, cancel + retry)
through an App whose pool prepares (``on``, the ``auto`` default on a direct
connection) and one whose pool never does (``off``, what ``auto`` picks behind
PgBouncer), on one throwaway database. Prints calls per second per mode, the median of
the rounds, and off as a fraction of on.

    .venv/bin/python -m benchmarks.prepared [--calls 500] [--rounds 5] [--json]

DATABASE_URL's server (default: local 127.0.0.1:5432 as postgres).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import statistics
import time

import pgq
from benchmarks import command_line
from pgq.bench.database import fresh_database
from pgq.settings import Settings


async def _round(dsn: str, mode: str, calls: int) -> float:
    settings = dataclasses.replace(Settings(), prepared_statements=mode)  # type: ignore[arg-type]
    async with pgq.App(dsn, settings=settings, pool_max_size=1) as app:
        await app.enqueue("warm-up")
        started = time.perf_counter()
        for _ in range(calls):
            job = await app.enqueue("noop", delay=3600)
            await app.get_job(job.id)
            await app.cancel(job.id)
            await app.retry(job.id)
        return 4 * calls / (time.perf_counter() - started)


async def _run(dsn: str, calls: int, rounds: int) -> dict[str, float]:
    rates: dict[str, list[float]] = {"on": [], "off": []}
    for _ in range(rounds):
        for mode in ("on", "off"):
            rates[mode].append(await _round(dsn, mode, calls))
    on, off = statistics.median(rates["on"]), statistics.median(rates["off"])
    return {"on_calls_per_s": round(on, 1), "off_calls_per_s": round(off, 1), "off_over_on": round(off / on, 3)}


def main() -> None:
    args = command_line.parse(
        __doc__, calls=(500, "enqueue+get+cancel+retry rounds per mode and round"), rounds=5, json=False
    )
    server = command_line.server_dsn()
    with fresh_database(server, "pgq_prepared") as dsn:
        result = asyncio.run(_run(dsn, args.calls, args.rounds))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"prepared on : {result['on_calls_per_s']:>8} calls/s")
        print(f"prepared off: {result['off_calls_per_s']:>8} calls/s  ({result['off_over_on']} of on)")


if __name__ == "__main__":
    main()
