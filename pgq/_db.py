"""Opening connections, and turning connection failures into one-line errors."""

from __future__ import annotations

import re

import psycopg
from psycopg.conninfo import conninfo_to_dict

from pgq._queries import QUERIES
from pgq.errors import ConfigError, DatabaseUnavailableError, SchemaNotMigratedError

# The alembic revision this version of pgq expects; `pgq migrate` brings a database here.
SCHEMA_HEAD = "0010"

_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


def redact(dsn: str) -> str:
    """The DSN with any password hidden, for messages and logs."""
    return re.sub(r"password=\S+", "password=***", _PASSWORD.sub(r"\1***@", dsn))


def validate_dsn(dsn: str) -> None:
    """Raise ConfigError for a DSN libpq cannot parse, before any connection attempt."""
    try:
        conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"DATABASE_URL is not a valid PostgreSQL DSN ({redact(dsn)}): {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def unavailable(dsn: str, exc: BaseException) -> DatabaseUnavailableError:
    return DatabaseUnavailableError(f"cannot connect to PostgreSQL at {redact(dsn)}: {_first_line(exc)}")


def connect(dsn: str, *, autocommit: bool = True) -> psycopg.Connection[tuple[object, ...]]:
    validate_dsn(dsn)
    try:
        return psycopg.connect(dsn, autocommit=autocommit, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise unavailable(dsn, exc) from None


async def connect_async(dsn: str, *, autocommit: bool = True) -> psycopg.AsyncConnection[tuple[object, ...]]:
    validate_dsn(dsn)
    try:
        return await psycopg.AsyncConnection.connect(dsn, autocommit=autocommit, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise unavailable(dsn, exc) from None


def version_error(version: str | None) -> SchemaNotMigratedError | None:
    if version is None:
        return SchemaNotMigratedError("the database has no pgq schema: run `pgq migrate` first")
    if version != SCHEMA_HEAD:
        return SchemaNotMigratedError(
            f"the database's pgq schema is at revision {version}, this pgq needs {SCHEMA_HEAD}: run `pgq migrate`"
        )
    return None


def check_schema(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Raise SchemaNotMigratedError unless the database is at SCHEMA_HEAD."""
    try:
        row = conn.execute(QUERIES["schema_version_get"]).fetchone()
    except psycopg.errors.UndefinedTable:
        conn.rollback()
        row = None
    if error := version_error(str(row[0]) if row else None):
        raise error


async def check_schema_async(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
    try:
        row = await (await conn.execute(QUERIES["schema_version_get"])).fetchone()
    except psycopg.errors.UndefinedTable:
        await conn.rollback()
        row = None
    if error := version_error(str(row[0]) if row else None):
        raise error
