"""Sustained churn with pruning on: does pgq.jobs level off instead of growing?

Pushes --jobs no-op jobs (default 200,000) through real `pgq worker` processes in
batches, with succeeded jobs kept for --retention seconds, and prints the table's total
size (heap + indexes + TOAST), live and dead tuples after every --sample jobs.

    .venv/bin/python benchmarks/bloat.py [--jobs 200000] [--workers 2] [--retention 5]

It creates and drops its own database on DATABASE_URL's server (default: local
127.0.0.1:5432 as postgres).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

import pgq
from benchmarks import command_line
from pgq.migrate import migrate

ROOT = Path(__file__).resolve().parent.parent
STATS = """
SELECT pg_total_relation_size('pgq.jobs'), n_live_tup, n_dead_tup, autovacuum_count
FROM pg_stat_user_tables WHERE relid = 'pgq.jobs'::regclass
"""


def main() -> None:
    args = command_line.parse(__doc__, jobs=200_000, sample=20_000, workers=2, retention=5.0)
    server = command_line.server_dsn()
    name = f"pgq_bloat_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = make_conninfo(server, dbname=name)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        migrate(dsn)
        env = {
            **os.environ,
            "DATABASE_URL": dsn,
            "PYTHONPATH": str(ROOT),
            "PGQ_RETENTION_SUCCEEDED": str(args.retention),
            "PGQ_MAINTENANCE_INTERVAL": "1",
        }
        cmd = [sys.executable, "-m", "pgq", "--log-level", "WARNING", "worker", "--app", "tests.apps.basic:app"]
        procs = [subprocess.Popen([*cmd, "--concurrency", "20"], env=env, cwd=ROOT) for _ in range(args.workers)]
        print(f"{'jobs done':>10} {'table+indexes':>14} {'live':>8} {'dead':>8} {'autovacuums':>12} {'jobs/s':>8}")
        started = time.monotonic()
        with pgq.App(dsn) as app, psycopg.connect(dsn, autocommit=True) as conn:
            enqueued = 0
            while enqueued < args.jobs:
                batch = min(args.sample, args.jobs - enqueued)
                for start in range(0, batch, 5000):
                    app.enqueue_many_sync([{"task": "noop"} for _ in range(min(5000, batch - start))])
                enqueued += batch
                while conn.execute("SELECT count(*) FROM pgq.jobs WHERE finished_at IS NULL").fetchone() != (0,):
                    time.sleep(0.2)
                size, live, dead, vacuums = conn.execute(STATS).fetchone()  # type: ignore[misc]
                rate = enqueued / (time.monotonic() - started)
                print(f"{enqueued:>10} {size / 2**20:>11.1f} MB {live:>8} {dead:>8} {vacuums:>12} {rate:>8.0f}")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


if __name__ == "__main__":
    main()
