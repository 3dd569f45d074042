"""What queue pausing costs the claim: the claim function of migration 0007 (no pause,
clock read before the lock) against the current one, in one run, on one database.

Each round empties the table, installs one of the two functions and measures
  - drain: `pgq bench`'s drain workload (real `pgq worker` processes empty a queue);
  - bare claim: one connection calls claim_jobs(['default'], 10) on an empty queue, the
    functions side by side (0007 as pgq.claim_jobs_0007), alternating every 50 calls;
and the current function once more with another queue paused (a row in pgq.queues that
the claim's lookup skips). Rounds alternate, so load on a shared machine hits all alike;
the report gives medians and their ratio to the 0007 function.

    .venv/bin/python benchmarks/pause_cost.py [--jobs 10000] [--rounds 3] [--workers 1]

It creates and drops its own database on DATABASE_URL's server (default: local
127.0.0.1:5432 as postgres).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path
from typing import LiteralString

import psycopg

from pgq._queries import QUERIES
from pgq.app import App
from pgq.bench import workloads
from pgq.bench.database import fresh_database
from pgq.bench.queries import BENCH_QUERIES

VERSIONS = Path(__file__).resolve().parent.parent / "migrations" / "versions"


def _claim_function(revision_file: str) -> LiteralString:
    """The CREATE FUNCTION pgq.claim_jobs statement of a migration, as CREATE OR REPLACE."""
    text = (VERSIONS / revision_file).read_text()
    start = text.index("CREATE OR REPLACE FUNCTION pgq.claim_jobs" if "OR REPLACE" in text else "CREATE FUNCTION")
    return text[start:].replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


VARIANTS: dict[str, tuple[LiteralString, bool]] = {
    "0007 (no pause)": (_claim_function("0007_claim_function.sql"), False),
    "current": (_claim_function("0008_queue_pause_claim_clock.sql"), False),
    "current, other queue paused": (_claim_function("0008_queue_pause_claim_clock.sql"), True),
}


def _prepare(dsn: str, function: LiteralString, other_paused: bool) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(BENCH_QUERIES["bench_jobs_reset"])
        conn.execute("DELETE FROM pgq.queues")
        conn.execute(function)
        if other_paused:
            conn.execute(QUERIES["queue_pause"], {"queue": "elsewhere"})


def _claim_blocks(dsn: str, blocks: int) -> dict[str, list[float]]:
    """Per-call seconds of the bare single-queue claim on an empty queue (its fixed cost,
    where a pause check would show; claiming real rows leaves dead index entries whose
    cost grows with every call), variants interleaved block by block.

    The 0007 function is installed beside the current one as pgq.claim_jobs_0007, so the
    variants alternate every 50 calls on one connection without reinstalling anything.
    """
    calls = 50
    per_call: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(BENCH_QUERIES["bench_jobs_reset"])
        conn.execute("DELETE FROM pgq.queues")
        conn.execute(VARIANTS["current"][0])
        conn.execute(VARIANTS["0007 (no pause)"][0].replace("pgq.claim_jobs(", "pgq.claim_jobs_0007(", 1))
        old = "SELECT * FROM pgq.claim_jobs_0007(%(queues)s::text[], %(limit)s::integer, %(worker_id)s::text)"
        params = {"queues": ["default"], "limit": 10, "worker_id": "bench"}
        for _ in range(blocks):
            for variant in VARIANTS:
                conn.execute("DELETE FROM pgq.queues")
                if variant.endswith("paused"):
                    conn.execute(QUERIES["queue_pause"], {"queue": "elsewhere"})
                query = old if variant.startswith("0007") else QUERIES["job_claim"]
                start = time.perf_counter()
                for _ in range(calls):
                    conn.execute(query, params)
                per_call[variant].append((time.perf_counter() - start) / calls)
        conn.execute("DROP FUNCTION pgq.claim_jobs_0007")
    return per_call


async def _run(dsn: str, args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    times: dict[str, dict[str, list[float]]] = {v: {"drain": []} for v in VARIANTS}
    async with App(dsn) as app:
        for _ in range(args.rounds):
            for variant, (function, other_paused) in VARIANTS.items():
                _prepare(dsn, function, other_paused)
                drained = await workloads.drain(app, dsn, args.jobs, args.workers, args.concurrency, args.batch)
                times[variant]["drain"].append(drained.seconds)
    blocks = 100
    for variant, seconds in _claim_blocks(dsn, blocks).items():
        times[variant]["empty claim (per call)"] = seconds
    _prepare(dsn, VARIANTS["current"][0], False)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--batch", type=int, default=5_000)
    args = parser.parse_args()
    server = os.environ.get("DATABASE_URL", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
    with fresh_database(server, "pgq_pause_cost") as dsn:
        times = asyncio.run(_run(dsn, args))
    base = {kind: statistics.median(t) for kind, t in times["0007 (no pause)"].items()}
    print(f"drain of {args.jobs} jobs ({args.rounds} rounds), empty claims: medians (ratio to 0007)")
    for variant, kinds in times.items():
        medians = {kind: statistics.median(t) for kind, t in kinds.items()}
        cells = [
            f"{kind} {m:.3f} s ({m / base[kind]:.3f})"
            if kind == "drain"
            else f"{kind} {m * 1e3:.3f} ms ({m / base[kind]:.3f})"
            for kind, m in medians.items()
        ]
        print(f"  {variant:<28} " + "   ".join(cells))


if __name__ == "__main__":
    main()
