"""Opening connections, and turning connection failures into one-line errors."""

from __future__ import annotations

import re
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import PoolTimeout

from pgq._queries import QUERIES
from pgq.errors import ConfigError, DatabaseUnavailableError, SchemaNotMigratedError, first_line

if TYPE_CHECKING:
    from pgq.settings import PreparedStatements

# The alembic revision this version of pgq expects; `pgq migrate` brings a database here.
SCHEMA_HEAD = "0019"

_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


def redact(dsn: str) -> str:
    """The DSN with any password hidden, for messages and logs."""
    return re.sub(r"password=\S+", "password=***", _PASSWORD.sub(r"\1***@", dsn))


def validate_dsn(dsn: str, name: str = "DATABASE_URL") -> None:
    """Raise ConfigError for a DSN libpq cannot parse, before any connection attempt."""
    try:
        conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"{name} is not a valid PostgreSQL DSN ({redact(dsn)}): {first_line(exc)}") from None


def unavailable(dsn: str, exc: BaseException) -> DatabaseUnavailableError:
    return DatabaseUnavailableError(f"cannot connect to PostgreSQL at {redact(dsn)}: {first_line(exc)}")


# -- network timeouts ----------------------------------------------------------------
#
# Without them a connection whose network went silent (a partition, a host gone, a
# firewall that drops instead of resetting) stays "open" for the kernel's ~15 minutes of
# retransmissions, and a query on it hangs that long. With them a silent link fails:
# a query whose bytes go unacknowledged for tcp_user_timeout (10 s), an idle connection
# once keepalive probes (after 5 s idle, every 2 s) go unanswered for as long, a connect
# attempt after connect_timeout. Every connection pgq opens (pools, LISTEN, one-off)
# gets them; a value set in the DSN itself wins. They concern TCP only (no effect on a
# Unix socket), and the kernel answers keepalives, so a long query on a busy server is
# never cut short by them.
NETWORK_TIMEOUTS: dict[str, int] = {
    "connect_timeout": 10,  # seconds
    "keepalives": 1,
    "keepalives_idle": 5,  # seconds idle before the first probe
    "keepalives_interval": 2,  # seconds between probes
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,  # milliseconds sent data may stay unacknowledged
}

POOL_TIMEOUT = 10.0
"""Seconds a request waits for a connection from one of pgq's pools before PoolTimeout
(an OperationalError): while the database cannot be reached, callers fail after this
instead of queueing for psycopg_pool's default 30 s."""


DOWN_POOL_TIMEOUT = 1.0
"""The wait for a pooled connection while the database is known unreachable (``Reach``)."""


class Reach:
    """Whether a pool's database was reachable at the last try, and so how long to wait
    for one of its connections: POOL_TIMEOUT normally, DOWN_POOL_TIMEOUT after a connection
    was lost (no SQLSTATE: a network or server failure, not a refused statement) until an
    operation succeeds again. So while the database is unreachable, callers fail in about
    a second each (the pool keeps reconnecting in the background) instead of queueing."""

    def __init__(self) -> None:
        self.down = False

    @property
    def timeout(self) -> float:
        return DOWN_POOL_TIMEOUT if self.down else POOL_TIMEOUT

    def __enter__(self) -> Self:
        """``with reach:`` around one use of the pool. A class, not a generator-based
        context manager: it is on the path of every enqueue."""
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.down = False
        elif isinstance(exc, psycopg.OperationalError) and not isinstance(exc, PoolTimeout) and exc.sqlstate is None:
            self.down = True  # a busy pool (PoolTimeout) is not an unreachable database


def network_options(dsn: str) -> dict[str, int]:
    """NETWORK_TIMEOUTS, less the ones the DSN sets itself."""
    try:
        given = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        given = {}
    return {key: value for key, value in NETWORK_TIMEOUTS.items() if key not in given}


def connect(dsn: str, *, autocommit: bool = True, **kwargs: Any) -> psycopg.Connection[tuple[object, ...]]:
    """A one-off connection. It never prepares statements: it runs too few to gain from
    it, and through PgBouncer in transaction mode a prepared statement breaks."""
    validate_dsn(dsn)
    options: dict[str, Any] = {**network_options(dsn), **kwargs}
    try:
        return psycopg.connect(dsn, autocommit=autocommit, prepare_threshold=None, **options)
    except psycopg.OperationalError as exc:
        raise unavailable(dsn, exc) from None


async def connect_async(
    dsn: str, *, autocommit: bool = True, **kwargs: Any
) -> psycopg.AsyncConnection[tuple[object, ...]]:
    """The async twin of ``connect`` (no prepared statements either)."""
    validate_dsn(dsn)
    options: dict[str, Any] = {**network_options(dsn), **kwargs}
    try:
        return await psycopg.AsyncConnection.connect(dsn, autocommit=autocommit, prepare_threshold=None, **options)
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


def pool_kwargs(prepare: bool, application_name: str | None = None, *, dsn: str = "") -> dict[str, Any]:
    """The connect arguments of every connection in one of pgq's pools (``dsn``: the
    pool's, whose own network settings win over NETWORK_TIMEOUTS)."""
    kwargs: dict[str, Any] = {"autocommit": True, **network_options(dsn)}
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
