"""pgq at scale: a 1M-job backlog, worker memory, a long transaction, 1/2/4 processes.

    DATABASE_URL=postgresql://postgres@127.0.0.1/postgres .venv/bin/python -m benchmarks.scale

In one throwaway database on DATABASE_URL's server (the embedded one without it):

- backlog: the drain rate of --jobs no-op jobs in an empty table, then of a --backlog
  job queue (default 1,000,000) drained to the end by one worker process; the worker's
  RSS is sampled every second through the big drain (peak, end).
- long transaction: a producer at --rate jobs/s for --duration seconds, end-to-end
  latency (enqueue → finish) p50/p99/max, first alone, then while another session
  holds a REPEATABLE READ transaction (an old snapshot) open the whole time.
- scaling: the drain rate of --jobs jobs with 1, 2 and 4 worker processes.

Each worker process runs at --concurrency. Prints a table, or JSON with --json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg

from pgq._queries import QUERIES
from pgq.app import App
from pgq.bench import workloads
from pgq.bench.database import fresh_database, server_settings
from pgq.bench.queries import BENCH_QUERIES
from pgq.bench.raw import drained_seconds
from pgq.bench.stats import Result
from pgq.bench.workers import check_alive, worker_processes

PREFILL_BATCH = 10_000


def rss_mb(pid: int) -> float:
    """Resident set size of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def _reset(dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(BENCH_QUERIES["bench_jobs_reset"])
        await conn.execute(QUERIES["jobs_vacuum"])


async def backlog_drain(app: App, dsn: str, n: int, concurrency: int) -> tuple[Result, dict[str, float]]:
    """Drain n pre-enqueued jobs with one worker, sampling its RSS every second.

    Progress is read from the ready-job index (cheap with a million rows), not by
    counting finished rows, which would scan the table under the drain it measures.
    """
    await workloads.prefill(app, n, PREFILL_BATCH)
    rss: list[float] = []
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        with worker_processes(dsn, 1, concurrency) as procs:
            while True:
                check_alive(procs)
                rss.append(rss_mb(procs[0].pid))
                row = await (await conn.execute(BENCH_QUERIES["bench_jobs_unfinished"])).fetchone()
                if row is not None and not row[0]:
                    break
                await asyncio.sleep(1.0)
        finished, seconds = await drained_seconds(conn)
    memory = {"rss_peak_mb": max(rss), "rss_end_mb": rss[-1]}
    return Result("backlog_drain", finished, seconds, note=f"1 process x concurrency {concurrency}"), memory


@contextlib.asynccontextmanager
async def long_transaction(dsn: str) -> AsyncIterator[None]:
    """Another session holding an old snapshot open (what a forgotten BEGIN does)."""
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        await conn.set_isolation_level(psycopg.IsolationLevel.REPEATABLE_READ)
        await conn.execute(BENCH_QUERIES["bench_jobs_unfinished"])  # opens the transaction, takes the snapshot
        yield
        await conn.rollback()


async def run(o: argparse.Namespace, dsn: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with App(dsn) as app:
        if "backlog" in o.only:
            await _reset(dsn)
            empty = await workloads.drain(app, dsn, o.jobs, 1, o.concurrency, PREFILL_BATCH)
            await _reset(dsn)
            big, memory = await backlog_drain(app, dsn, o.backlog, o.concurrency)
            out["backlog"] = {
                "empty_table": empty.to_dict(),
                "backlog": big.to_dict(),
                "backlog_vs_empty": round(big.rate / empty.rate, 3),
                **memory,
            }
        if "long_txn" in o.only:
            await _reset(dsn)
            alone = await workloads.steady(app, dsn, o.rate, o.duration, 1, o.concurrency)
            await _reset(dsn)
            async with long_transaction(dsn):
                held = await workloads.steady(app, dsn, o.rate, o.duration, 1, o.concurrency)
            out["long_txn"] = {"alone": alone.to_dict(), "with_long_transaction": held.to_dict()}
        if "scaling" in o.only:
            rates: dict[str, Any] = {}
            for processes in (1, 2, 4):
                await _reset(dsn)
                result = await workloads.drain(app, dsn, o.jobs, processes, o.concurrency, PREFILL_BATCH)
                rates[str(processes)] = result.to_dict()
            base = rates["1"]["rate"]
            out["scaling"] = {"processes": rates, "vs_one": {k: round(v["rate"] / base, 2) for k, v in rates.items()}}
    return out


def format_report(report: dict[str, Any]) -> str:
    lines = []
    if b := report.get("backlog"):
        lines += [
            f"drain, empty table ({b['empty_table']['jobs']:,} jobs): {b['empty_table']['rate']:,.0f} jobs/s",
            f"drain, {b['backlog']['jobs']:,}-job backlog: {b['backlog']['rate']:,.0f} jobs/s "
            f"= {b['backlog_vs_empty']:.2f} x empty",
            f"worker RSS over that drain: peak {b['rss_peak_mb']:.0f} MB, at the end {b['rss_end_mb']:.0f} MB",
        ]
    if t := report.get("long_txn"):
        for name, r in (("alone", t["alone"]), ("with a long transaction open", t["with_long_transaction"])):
            lines.append(
                f"steady {r['note'].split(',')[0]}, {name}: enqueue→finish p50 {r['p50_ms']:.1f} ms, "
                f"p99 {r['p99_ms']:.1f} ms, max {r['max_ms']:.1f} ms"
            )
    if s := report.get("scaling"):
        lines += [
            f"drain with {k} process(es): {v['rate']:,.0f} jobs/s = {s['vs_one'][k]:.2f} x one"
            for k, v in s["processes"].items()
        ]
    server = report["server"]
    lines.append(
        f"\n{report['machine']['cpus']} CPUs; {server['version'].split(' on ')[0]}, fsync={server['fsync']}, "
        f"synchronous_commit={server['synchronous_commit']}, shared_buffers={server['shared_buffers']}"
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backlog", type=int, default=1_000_000, help="jobs of the big drain (default 1,000,000)")
    parser.add_argument("--jobs", type=int, default=50_000, help="jobs of the other drains (default 50,000)")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rate", type=float, default=200.0, help="steady producer jobs/s (default 200)")
    parser.add_argument("--duration", type=float, default=20.0, help="steady run seconds (default 20)")
    parser.add_argument("--only", default="backlog,long_txn,scaling", help="comma-separated: backlog,long_txn,scaling")
    parser.add_argument("--json", action="store_true")
    o = parser.parse_args(argv)
    o.only = tuple(o.only.split(","))
    if unknown := set(o.only) - {"backlog", "long_txn", "scaling"}:
        parser.error(f"unknown part(s) {sorted(unknown)}")
    return o


def main(argv: list[str] | None = None) -> int:
    o = parse_args(argv)
    server_dsn = App().dsn  # DATABASE_URL, or the embedded server
    with fresh_database(server_dsn, "pgq_scale") as dsn:
        report: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}, "server": server_settings(dsn)}
        started = time.perf_counter()
        report.update(asyncio.run(run(o, dsn)))
        report["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=2) if o.json else format_report(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
