"""Drain rate with 1, 2 and 4 worker hosts, each on a network stack of its own.

    sudo .venv/bin/python -m benchmarks.scale_hosts            # root: it makes namespaces
    sudo .venv/bin/python -m benchmarks.scale_hosts --jobs 50000 --hosts 1,2,4 --workers 2 --json

It builds what tests/netns builds (tests/netns/hosts.py): a bridge, a throwaway
PostgreSQL listening on the bridge address only (this machine's server binaries, run as
``postgres``, fsync off), and per host a network namespace joined to the bridge by a veth
pair. For each host count: a fresh database, --jobs no-op jobs enqueued first (untimed),
then --workers ``pgq worker`` processes per host (at --concurrency) drain them; the rate
is jobs / (last finish - first start), by the database's clock. Each host count runs
--rounds times; the median is printed. Everything it made is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from pgq._ops import JobSpec
from pgq.app import App
from pgq.bench.raw import drained_seconds
from pgq.bench.workers import APP
from tests.netns.hosts import Bridge, Cluster, unavailable

BATCH = 10_000


async def _prefill(dsn: str, n: int) -> None:
    async with App(dsn) as app:
        for offset in range(0, n, BATCH):
            await app.enqueue_many([JobSpec("noop")] * (min(n, offset + BATCH) - offset))


async def _drained(dsn: str, n: int, limit: float) -> float:
    deadline = time.monotonic() + limit
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        while True:
            finished, seconds = await drained_seconds(conn)
            if finished >= n:
                return seconds
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {finished} of {n} jobs finished in {limit:.0f} s")
            await asyncio.sleep(0.1)


def drain(bridge: Bridge, cluster: Cluster, hosts: int, args: argparse.Namespace, name: str) -> float:
    """Jobs/s of one drain of ``args.jobs`` jobs by ``hosts`` hosts x ``args.workers`` workers."""
    with cluster.database(name) as dsn, tempfile.TemporaryDirectory() as logs:
        asyncio.run(_prefill(dsn, args.jobs))
        try:
            made = [bridge.host(i) for i in range(hosts)]
            for host in made:
                for n in range(args.workers):
                    host.worker(
                        dsn,
                        Path(logs) / f"{host.label}-{n}.log",
                        "--concurrency",
                        str(args.concurrency),
                        app=APP,
                        log_level="WARNING",
                    )
            seconds = asyncio.run(_drained(dsn, args.jobs, args.timeout))
            for host in made:
                host.stop()
        finally:
            bridge.remove_hosts()
    return float(args.jobs / seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--hosts", default="1,2,4", help="comma-separated host counts")
    parser.add_argument("--workers", type=int, default=2, help="worker processes per host")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600, help="seconds one drain may take")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    reason = unavailable()
    if reason is not None:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    counts = [int(c) for c in args.hosts.split(",")]
    bridge = Bridge()
    cluster = Cluster(bridge)
    rates: dict[int, list[float]] = {c: [] for c in counts}
    try:
        bridge.up()
        cluster.start()
        for r in range(args.rounds):
            for count in counts:  # interleaved, so drift over time hits every count alike
                rates[count].append(drain(bridge, cluster, count, args, f"pgq_scale_{os.getpid()}_{r}_{count}"))
                if not args.json:
                    print(f"  round {r + 1}: {count} host(s): {rates[count][-1]:,.0f} jobs/s", file=sys.stderr)
    finally:
        cluster.stop()
        bridge.down()
    result = {
        "jobs": args.jobs,
        "workers_per_host": args.workers,
        "concurrency": args.concurrency,
        "cpus": os.cpu_count(),
        "jobs_per_second": {str(c): round(statistics.median(v)) for c, v in rates.items()},
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.jobs:,} no-op jobs, {args.workers} worker(s) per host at concurrency {args.concurrency}:")
        print(f"{'hosts':>5}  {'workers':>7}  {'jobs/s':>8}")
        for count, values in rates.items():
            print(f"{count:>5}  {count * args.workers:>7}  {statistics.median(values):>8,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
