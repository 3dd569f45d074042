"""A throwaway database on the given server: created and migrated, dropped at the end."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from pgq import _db
from pgq.bench.queries import BENCH_QUERIES


def database_dsn(server_dsn: str, name: str) -> str:
    """The server's DSN with another database name."""
    return make_conninfo(server_dsn, dbname=name)


def unique_name(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


def _execute(server_dsn: str, query: sql.Composed) -> None:
    with _db.connect(server_dsn) as conn:  # autocommit: CREATE/DROP DATABASE need it
        conn.execute(query)


def create_database(server_dsn: str, name: str) -> str:
    _execute(server_dsn, sql.SQL(BENCH_QUERIES["bench_database_create"]).format(name=sql.Identifier(name)))
    return database_dsn(server_dsn, name)


def drop_database(server_dsn: str, name: str) -> None:
    _execute(server_dsn, sql.SQL(BENCH_QUERIES["bench_database_drop"]).format(name=sql.Identifier(name)))


def database_exists(server_dsn: str, name: str) -> bool:
    with _db.connect(server_dsn) as conn:
        row = conn.execute(BENCH_QUERIES["bench_database_exists"], {"name": name}).fetchone()
    return bool(row and row[0])


@contextlib.contextmanager
def fresh_database(server_dsn: str, prefix: str, *, migrate: bool = True) -> Iterator[str]:
    """Yield the DSN of a new, empty (or pgq-migrated) database; drop it afterwards."""
    from pgq.migrate import migrate as migrate_database

    name = unique_name(prefix)
    dsn = create_database(server_dsn, name)
    try:
        if migrate:
            migrate_database(dsn)
        yield dsn
    finally:
        drop_database(server_dsn, name)


def server_settings(dsn: str) -> dict[str, Any]:
    """What the results depend on: the server version and its durability settings."""
    with psycopg.connect(dsn) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(BENCH_QUERIES["bench_server_settings"])
        row = cur.fetchone()
    return dict(row or {})
