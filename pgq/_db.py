"""Opening connections, and turning connection failures into one-line errors."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from pgq._queries import QUERIES
from pgq.errors import ConfigError, DatabaseUnavailableError, SchemaNotMigratedError

if TYPE_CHECKING:
    from pgq.settings import PreparedStatements

# The alembic revision this version of pgq expects; `pgq migrate` brings a database here.
SCHEMA_HEAD = "0013"

_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


def redact(dsn: str) -> str:
    """The DSN with any password hidden, for messages and logs."""
    return re.sub(r"password=\S+", "password=***", _PASSWORD.sub(r"\1***@", dsn))


def validate_dsn(dsn: str, name: str = "DATABASE_URL") -> None:
    """Raise ConfigError for a DSN libpq cannot parse, before any connection attempt."""
    try:
        conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"{name} is not a valid PostgreSQL DSN ({redact(dsn)}): {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def unavailable(dsn: str, exc: BaseException) -> DatabaseUnavailableError:
    return DatabaseUnavailableError(f"cannot connect to PostgreSQL at {redact(dsn)}: {_first_line(exc)}")


def connect(dsn: str, *, autocommit: bool = True, **kwargs: Any) -> psycopg.Connection[tuple[object, ...]]:
    """A one-off connection. It never prepares statements: it runs too few to gain from
    it, and through PgBouncer in transaction mode a prepared statement breaks."""
    validate_dsn(dsn)
    try:
        return psycopg.connect(dsn, autocommit=autocommit, connect_timeout=10, prepare_threshold=None, **kwargs)
    except psycopg.OperationalError as exc:
        raise unavailable(dsn, exc) from None


async def connect_async(
    dsn: str, *, autocommit: bool = True, **kwargs: Any
) -> psycopg.AsyncConnection[tuple[object, ...]]:
    """The async twin of ``connect`` (no prepared statements either)."""
    validate_dsn(dsn)
    try:
        return await psycopg.AsyncConnection.connect(
            dsn, autocommit=autocommit, connect_timeout=10, prepare_threshold=None, **kwargs
        )
    except psycopg.OperationalError as exc:
        raise unavailable(dsn, exc) from None


# -- connection poolers -------------------------------------------------------------
#
# A transaction pooler (PgBouncer, pgcat, Supavisor) cannot hand the client a server
# process's cancel key, since the client has no server of its own: it makes one up. So a
# backend pid at connect that differs from the pid running our query means a pooler
# sits in between. A direct connection always agrees.


def is_pooled(conn: psycopg.Connection[Any]) -> bool:
    """True when ``conn`` reaches PostgreSQL through a connection pooler."""
    row = conn.execute(QUERIES["session_backend_pid"], prepare=False).fetchone()
    return row is not None and row[0] != conn.info.backend_pid


async def is_pooled_async(conn: psycopg.AsyncConnection[Any]) -> bool:
    row = await (await conn.execute(QUERIES["session_backend_pid"], prepare=False)).fetchone()
    return row is not None and row[0] != conn.info.backend_pid


def prepares(mode: PreparedStatements, pooled: bool) -> bool:
    """Whether pgq's pooled connections may prepare statements (psycopg's default: after 5 uses)."""
    return mode == "on" or (mode == "auto" and not pooled)


def pool_kwargs(prepare: bool, application_name: str | None = None) -> dict[str, Any]:
    """The connect arguments of every connection in one of pgq's pools."""
    kwargs: dict[str, Any] = {"autocommit": True}
    if not prepare:
        kwargs["prepare_threshold"] = None
    if application_name is not None:
        kwargs["application_name"] = application_name
    return kwargs


async def open_checked_async(dsn: str, mode: PreparedStatements) -> bool:
    """Check the schema over one connection, and say whether pools may prepare statements."""
    conn = await connect_async(dsn)
    try:
        await check_schema_async(conn)
        return prepares(mode, mode == "auto" and await is_pooled_async(conn))
    finally:
        await conn.close()


def open_checked(dsn: str, mode: PreparedStatements) -> bool:
    with connect(dsn) as conn:
        check_schema(conn)
        return prepares(mode, mode == "auto" and is_pooled(conn))


def version_error(version: str | None) -> SchemaNotMigratedError | None:
    if version is None:
        return SchemaNotMigratedError("the database has no pgq schema: run `pgq migrate` first")
    if version != SCHEMA_HEAD:
        return SchemaNotMigratedError(
            f"the database's pgq schema is at revision {version}, this pgq needs {SCHEMA_HEAD}: run `pgq migrate`"
        )
    return None


def schema_version(conn: psycopg.Connection[tuple[object, ...]]) -> str | None:
    """The pgq schema revision of the database; None when pgq was never migrated."""
    try:
        row = conn.execute(QUERIES["schema_version_get"]).fetchone()
    except psycopg.errors.UndefinedTable:
        conn.rollback()
        row = None
    return str(row[0]) if row else None


def check_schema(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Raise SchemaNotMigratedError unless the database is at SCHEMA_HEAD."""
    if error := version_error(schema_version(conn)):
        raise error


async def check_schema_async(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
    try:
        row = await (await conn.execute(QUERIES["schema_version_get"])).fetchone()
    except psycopg.errors.UndefinedTable:
        await conn.rollback()
        row = None
    if error := version_error(str(row[0]) if row else None):
        raise error
