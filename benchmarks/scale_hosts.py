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

from pgq.app import App
from pgq.bench.workers import APP
from pgq.bench.workloads import prefill, wait_finished
from tests.netns.hosts import Bridge, Cluster, unavailable

BATCH = 10_000
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def server_processes(cluster: Cluster) -> list[int]:
    """The postmaster and its children: backends, and background processes."""
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                children.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return [postmaster, *children]


async def _prefill(dsn: str, n: int) -> None:
    async with App(dsn) as app:
        await prefill(app, n, BATCH)


def _wait_registered(dsn: str, count: int) -> None:
    deadline = time.monotonic() + 60
    with psycopg.connect(dsn, autocommit=True) as conn:
        while (conn.execute("SELECT count(*) FROM pgq.workers").fetchone() or (0,))[0] < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count} worker processes did not start within 60 s")
            time.sleep(0.1)
    time.sleep(1.0)  # past start-up: the first heartbeat is written before the worker is idle


def drain(bridge: Bridge, cluster: Cluster, hosts: int, args: argparse.Namespace, name: str) -> dict[str, float]:
    """One drain of ``args.jobs`` jobs by ``hosts`` hosts x ``args.workers`` workers: jobs/s,
    and the CPU seconds per 1,000 jobs of the server and of the workers meanwhile."""
    with cluster.database(name) as dsn, tempfile.TemporaryDirectory() as logs:
        asyncio.run(_prefill(dsn, args.jobs))
        with App(dsn) as app:
            app.pause_queue_sync("default")  # the workers start (and import) before the clock does
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
            _wait_registered(dsn, hosts * args.workers)
            server_before = {pid: cpu_seconds(pid) for pid in server_processes(cluster)}
            workers_before = {proc.pid: cpu_seconds(proc.pid) for host in made for proc in host.procs}
            started = time.monotonic()
            with App(dsn) as app:
                app.resume_queue_sync("default")
            seconds = asyncio.run(wait_finished(dsn, args.jobs, [], args.timeout))
            wall = time.monotonic() - started
            server = sum(cpu_seconds(pid) - server_before.get(pid, 0.0) for pid in server_processes(cluster))
            workers = sum(cpu_seconds(pid) - before for pid, before in workers_before.items())
            for host in made:
                host.stop()
        finally:
            bridge.remove_hosts()
    per_k = 1000 / args.jobs
    return {
        "jobs_per_second": args.jobs / seconds,
        "server_cpu_per_1000": server * per_k,
        "workers_cpu_per_1000": workers * per_k,
        "cores_busy": (server + workers) / wall,
    }


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
    runs: dict[int, list[dict[str, float]]] = {c: [] for c in counts}
    try:
        bridge.up()
        cluster.start()
        for r in range(args.rounds):
            for count in counts:  # interleaved, so drift over time hits every count alike
                run = drain(bridge, cluster, count, args, f"pgq_scale_{os.getpid()}_{r}_{count}")
                runs[count].append(run)
                if not args.json:
                    print(f"  round {r + 1}: {count} host(s): {run['jobs_per_second']:,.0f} jobs/s", file=sys.stderr)
    finally:
        cluster.stop()
        bridge.down()
    result = {
        "jobs": args.jobs,
        "workers_per_host": args.workers,
        "concurrency": args.concurrency,
        "cpus": os.cpu_count(),
        "median": {
            str(count): {key: round(statistics.median(run[key] for run in done), 2) for key in done[0]}
            for count, done in runs.items()
        },
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.jobs:,} no-op jobs, {args.workers} worker(s) per host at concurrency {args.concurrency}:")
        print("CPU seconds per 1,000 jobs; cores busy = (server + workers CPU) / wall time; medians")
        print(
            f"{'hosts':>5}  {'workers':>7}  {'jobs/s':>8}  {'server CPU':>10}  {'workers CPU':>11}  {'cores busy':>10}"
        )
        for count, value in result["median"].items():
            print(
                f"{count:>5}  {int(count) * args.workers:>7}  {value['jobs_per_second']:>8,.0f}  "
                f"{value['server_cpu_per_1000']:>10.2f}  {value['workers_cpu_per_1000']:>11.2f}  "
                f"{value['cores_busy']:>10.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
