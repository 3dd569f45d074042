"""Alembic environment for pgq: plain SQL revisions run over psycopg 3.

`pgq migrate` passes the DSN in ``config.attributes["dsn"]``; the plain ``alembic``
command falls back to DATABASE_URL. A transaction-level advisory lock makes two
concurrent runs safe (the second waits for the first, then finds the database at head)
and works through PgBouncer in transaction mode: the schema, the lock and the
revisions all live in one transaction, so nothing outlives it on a pooled connection.
"""

from __future__ import annotations

import os

import psycopg
from alembic import context
from sqlalchemy import create_engine, pool

from pgq._queries import QUERIES

config = context.config
dsn = config.attributes.get("dsn") or os.environ.get("DATABASE_URL")
if not dsn:
    raise SystemExit("no database to migrate: set DATABASE_URL or use `pgq migrate`")

engine = create_engine(
    "postgresql+psycopg://",
    creator=lambda: psycopg.connect(dsn, prepare_threshold=None),
    poolclass=pool.NullPool,
)

with engine.connect() as connection:
    context.configure(connection=connection, version_table_schema="pgq", transactional_ddl=True)
    with context.begin_transaction():
        connection.exec_driver_sql(QUERIES["migration_lock"])
        connection.exec_driver_sql(QUERIES["schema_create"])
        context.run_migrations()
    connection.commit()
