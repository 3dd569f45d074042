"""Dashboard pages on a 1,000,000-job table: server time per page vs the raw SQL it runs.

Fills a fresh database with --jobs jobs (a busy week: 97 % succeeded, 1 % failed, the
rest waiting or cancelled; benchmarks' own named query bench_dashboard_fill), runs
VACUUM ANALYZE, then renders each page --runs times in-process through ASGI (routing,
auth, the queries on the app's pool, Jinja2) and, separately, runs exactly the same
statements on one connection with nothing else (the page's ops driven by hand, only
execute + fetch timed). Prints medians and p95 per page and the ratio page / SQL.

    .venv/bin/python benchmarks/dashboard.py [--jobs 1000000] [--runs 30]

Creates and drops its own database on DATABASE_URL's server (default: local
127.0.0.1:5432 as postgres). The target is under 100 ms server time per page.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row

import pgq
from pgq._queries import QUERIES
from pgq.api import create_app
from pgq.api.config import ApiSettings
from pgq.bench.database import fresh_database
from pgq.bench.queries import BENCH_QUERIES
from pgq.db import dashboard as data
from pgq.db import driver, job_admin
from pgq.spec import JobFilter

LEASE = dt.timedelta(seconds=60)


def sql_seconds(conn: psycopg.Connection[Any], op: driver.Op[Any]) -> float:
    """Run an op's statements on ``conn``, timing only the database round trips."""
    spent = 0.0
    try:
        statement = next(op)
        while True:
            assert not isinstance(statement, driver.Copy)
            with conn.cursor(row_factory=dict_row) as cur:
                started = time.perf_counter()
                cur.execute(*statement)
                rows = cur.fetchall() if cur.description else []
                spent += time.perf_counter() - started
            statement = op.send(rows)
    except StopIteration:
        return spent


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(0.95 * (len(ordered) - 1))] * 1000


async def page_seconds(client: httpx.AsyncClient, url: str, runs: int) -> list[float]:
    await client.get(url)  # warm: pool connections, template compilation, plan cache
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        response = await client.get(url)
        samples.append(time.perf_counter() - started)
        assert response.status_code == 200, (url, response.status_code, response.text[:500])
    return samples


async def measure(dsn: str, runs: int) -> None:
    app = pgq.App(dsn)
    api = create_app(app, settings=ApiSettings())
    with psycopg.connect(dsn, autocommit=True) as conn:
        failed_id = conn.execute("SELECT max(id) FROM pgq.jobs WHERE state = 'failed'").fetchone()
    assert failed_id is not None
    pages: dict[str, tuple[str, Callable[[], driver.Op[Any]]]] = {
        "overview": ("/ui/", lambda: data.overview(LEASE)),
        "jobs (newest 50)": ("/ui/jobs", lambda: job_admin.list_jobs(JobFilter(limit=51))),
        "jobs (q1, failed)": (
            "/ui/jobs?queue=q1&state=failed",
            lambda: job_admin.list_jobs(JobFilter(queue="q1", state="failed", limit=51)),
        ),
        "job (failed, with error)": (f"/ui/jobs/{failed_id[0]}", lambda: job_admin.get(failed_id[0])),
        "tasks (hour + day)": ("/ui/tasks", data.task_stats),
    }
    print(f"{'page':<26} {'page p50':>9} {'page p95':>9} {'SQL p50':>9} {'page / SQL':>11}")
    async with api.router.lifespan_context(api):
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://pgq") as client:
            for name, (url, op) in pages.items():
                page = await page_seconds(client, url, runs)
                with psycopg.connect(dsn, autocommit=True) as conn:
                    sql_seconds(conn, op())  # warm
                    raw = [sql_seconds(conn, op()) for _ in range(runs)]
                page_p50, page_p95 = summary(page)
                sql_p50, _ = summary(raw)
                print(
                    f"{name:<26} {page_p50:>7.1f}ms {page_p95:>7.1f}ms {sql_p50:>7.1f}ms {page_p50 / sql_p50:>10.2f}x"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--reuse", metavar="DSN", help="a database this script already filled: measure only")
    args = parser.parse_args()
    if args.reuse:
        asyncio.run(measure(args.reuse, args.runs))
        return
    server = os.environ.get("DATABASE_URL", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
    with fresh_database(server, "pgq_bench_dashboard") as dsn:
        started = time.perf_counter()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(BENCH_QUERIES["bench_dashboard_fill"], {"n": args.jobs})
            conn.execute(QUERIES["jobs_vacuum"])
        print(
            f"{args.jobs:,} jobs written and analyzed in {time.perf_counter() - started:.0f} s; "
            f"{args.runs} runs per page"
        )
        asyncio.run(measure(dsn, args.runs))


if __name__ == "__main__":
    main()
