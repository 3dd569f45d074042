"""How long `pgq migrate` takes on a full table, and whether it rewrote it.

    .venv/bin/python -m benchmarks.migration_time --jobs 1000000 --start 0017

Makes a database at revision --start, fills pgq.jobs with --jobs jobs, and times the
upgrade to head (which holds the table's lock throughout); prints the table's file node
and size before and after (the same file node: nothing was rewritten).
"""

from __future__ import annotations

import time

import psycopg
from alembic import command

from benchmarks.command_line import parse, server_dsn
from pgq.bench.database import fresh_database
from pgq.migrate import _alembic_config, migrate

FILL = "INSERT INTO pgq.jobs (task, args) SELECT 'noop', jsonb_build_object('i', g) FROM generate_series(1, %(n)s) AS g"
TABLE = "SELECT pg_relation_filenode('pgq.jobs'), pg_size_pretty(pg_total_relation_size('pgq.jobs'))"


def main() -> None:
    options = parse(__doc__, jobs=1_000_000, start=("0017", "the revision to upgrade from"))
    with fresh_database(server_dsn(), "pgq_migration_time", migrate=False) as dsn:
        command.upgrade(_alembic_config(dsn), options.start)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(FILL, {"n": options.jobs})
            conn.execute("VACUUM ANALYZE pgq.jobs")
            before = conn.execute(TABLE).fetchone()
        start = time.perf_counter()
        head = migrate(dsn)
        took = time.perf_counter() - start
        with psycopg.connect(dsn, autocommit=True) as conn:
            after = conn.execute(TABLE).fetchone()
    print(f"{options.jobs:,} jobs: {options.start} -> {head} in {took:.2f} s")
    print(f"pgq.jobs file node and size: before {before}, after {after}")


if __name__ == "__main__":
    main()
