"""Drives one query-layer operation on a connection, sync or async.

An operation is a generator that yields statements (``(query, params)`` or a ``Copy``)
and receives each one's rows, so its logic (idempotency races, ordering of bulk results,
why a cancel was refused) is written once and ``App`` offers both ``await app.x()`` and
``app.x_sync()``. ``App.run`` / ``App.run_sync`` drive one on the app's pool.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator, Mapping
from typing import Any, LiteralString, TypeVar

import psycopg
from psycopg.pq import ExecStatus
from psycopg.rows import dict_row

from pgq import _json, _times
from pgq.errors import JobStateError, PgqError, UnknownParentError

Row = dict[str, Any]
TUPLES_OK = ExecStatus.TUPLES_OK


@dataclasses.dataclass(frozen=True, slots=True)
class Copy:
    """A ``COPY … FROM STDIN (FORMAT BINARY)`` statement and its whole binary body
    (signature, rows, trailer), encoded by the operation (``pgq.db.copy_rows``)."""

    query: LiteralString
    data: bytes


Statement = tuple[LiteralString, Mapping[str, Any]] | Copy
T = TypeVar("T")
Op = Generator[Statement, list[Row], T]


def run_sync(conn: psycopg.Connection[Any], op: Op[T], *, prepare: bool | None = None) -> T:
    """Drive an operation on a sync connection (the caller's, or one from a pool).

    ``prepare=False`` never prepares the statements (psycopg's ``execute(prepare=)``).
    """
    total = _times.is_total(conn)
    try:
        statement = next(op)
        while True:
            rows: list[Row] = []
            with conn.cursor(row_factory=dict_row) as cur:
                if not total:  # a caller's connection
                    _times.make_total(cur)
                    _json.load_json_as_python(cur)
                if isinstance(statement, Copy):
                    with cur.copy(statement.query) as copy:
                        copy.write(statement.data)
                else:
                    cur.execute(*statement, prepare=prepare)
                    if _has_rows(cur):
                        rows = cur.fetchall()
            statement = op.send(rows)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    except psycopg.errors.UniqueViolation as exc:
        raise _unique_violation(exc) from None
    except psycopg.errors.ForeignKeyViolation as exc:
        raise _foreign_key_violation(exc) from None


async def run_async(conn: psycopg.AsyncConnection[Any], op: Op[T], *, prepare: bool | None = None) -> T:
    """Drive an operation on an async connection."""
    total = _times.is_total(conn)
    try:
        statement = next(op)
        while True:
            rows: list[Row] = []
            # Not closed: closing only resets what the dropped cursor holds, and an
            # ``async with`` costs three coroutines per statement on every enqueue.
            cur = conn.cursor(row_factory=dict_row)
            if not total:  # a caller's connection
                _times.make_total(cur)
                _json.load_json_as_python(cur)
            if isinstance(statement, Copy):
                async with cur.copy(statement.query) as copy:
                    await copy.write(statement.data)
            else:
                await cur.execute(*statement, prepare=prepare)
                if _has_rows(cur):
                    rows = await cur.fetchall()
            statement = op.send(rows)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    except psycopg.errors.UniqueViolation as exc:
        raise _unique_violation(exc) from None
    except psycopg.errors.ForeignKeyViolation as exc:
        raise _foreign_key_violation(exc) from None


def _has_rows(cur: psycopg.Cursor[Any] | psycopg.AsyncCursor[Any]) -> bool:
    """The statement returned rows (``cur.description`` says the same, but builds a
    Column object per column on every call)."""
    result = cur.pgresult
    return result is not None and result.status == TUPLES_OK


def _foreign_key_violation(exc: psycopg.errors.ForeignKeyViolation) -> Exception:
    """pgq.enqueue_dependent names the parents it did not find (column depends_on)."""
    if exc.diag.column_name == "depends_on":
        listed = (exc.diag.message_primary or "").rpartition(":")[2]
        return UnknownParentError([int(n) for n in listed.split(",") if n.strip()])
    return exc


def _unique_violation(exc: psycopg.errors.UniqueViolation) -> PgqError:
    # Only retry() can hit this: the failed job's idempotency key is taken by a live job.
    return JobStateError(
        "another job that is not final holds this job's idempotency key; "
        f"it cannot be queued again until that one finishes ({exc.diag.constraint_name})",
        state="conflict",
    )
