"""Alembic environment for pgq: plain SQL revisions run over psycopg 3.

`pgq migrate` passes the DSN in ``config.attributes["dsn"]``; the plain ``alembic``
command falls back to DATABASE_URL. An advisory lock makes two concurrent runs safe:
the second waits for the first, then finds the database at head.
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

engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(dsn), poolclass=pool.NullPool)

with engine.connect() as connection:
    raw = connection.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    raw.execute(QUERIES["migration_lock"])
    raw.execute(QUERIES["schema_create"])
    raw.commit()
    try:
        context.configure(connection=connection, version_table_schema="pgq", transactional_ddl=True)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        raw.rollback()
        raw.execute(QUERIES["migration_unlock"])
        raw.commit()
