"""Enqueue jobs inside a SQLAlchemy transaction (``pip install 'pgq-queue[sqlalchemy]'``).

::

    from pgq.integrations.sqlalchemy import enqueue, enqueue_async

    with Session(engine) as session, session.begin():
        session.add(Order(...))
        job = enqueue(session, app, "send_receipt", {"order_id": 7})

    async with AsyncSession(async_engine) as session, session.begin():
        session.add(Order(...))
        job = await enqueue_async(session, app, "send_receipt", {"order_id": 7})

``enqueue_many`` / ``enqueue_many_async`` take a batch, as ``app.enqueue_many`` does.

The job is written on the session's connection, in its transaction: it commits with the
session, wakes workers at that commit, and a rollback leaves nothing. The arguments are
checked by ``app`` first, as ``app.enqueue`` checks them (its registered tasks, their
defaults, its ``json_default``), and nothing is written when they are refused.

How it is written depends on the driver under the engine:

- psycopg 3 (``postgresql+psycopg://``, sync or async): pgq's own enqueue on the
  session's psycopg connection (``app.enqueue(..., conn=...)``);
- any other driver (``postgresql+asyncpg://``, psycopg2, pg8000): the SQL function
  ``pgq.enqueue()`` through the session, which checks the same limits again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Unpack

import psycopg
from sqlalchemy import Connection, RowMapping, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session

from pgq import _json
from pgq.app import App
from pgq.job import Job, from_row
from pgq.spec import EnqueueOptions, JobSpec, as_spec

__all__ = ["enqueue", "enqueue_async", "enqueue_many", "enqueue_many_async"]

# The statements of the path through the SQL function (named parameters in SQLAlchemy's
# :name style). The arguments arrive checked and with the app's defaults resolved.
_ENQUEUE = text(
    "SELECT pgq.enqueue(CAST(:task AS text), CAST(:args AS jsonb), queue => CAST(:queue AS text), "
    "priority => CAST(:priority AS bigint), run_at => CAST(:run_at AS timestamptz), "
    "delay => CAST(:delay AS interval), max_attempts => CAST(:max_attempts AS bigint), "
    "idempotency_key => CAST(:idempotency_key AS text))"
)
_JOBS = text("SELECT * FROM pgq.jobs WHERE id = ANY(CAST(:ids AS bigint[]))")


def enqueue(
    session: Session | Connection,
    app: App,
    task: str,
    args: Mapping[str, Any] | None = None,
    **options: Unpack[EnqueueOptions],
) -> Job:
    """Enqueue one job in the transaction of ``session`` (a ``Session`` or a Core ``Connection``).

    Takes the options of ``app.enqueue_sync``; returns the job (an idempotency key held
    by a job that is not final returns that job).
    """
    spec = JobSpec(task, args or {}, **options)
    connection = _connection(session, "enqueue")
    raw = connection.connection.driver_connection
    if isinstance(raw, psycopg.Connection):
        return app.enqueue_sync(task, args, conn=raw, **options)
    job_id = connection.execute(_ENQUEUE, _sql_params(app, spec)).scalar_one()
    return _read_jobs(connection.execute(_JOBS, {"ids": [job_id]}).mappings().all(), [job_id])[0]


def enqueue_many(session: Session | Connection, app: App, jobs: Iterable[JobSpec | Mapping[str, Any]]) -> list[Job]:
    """Enqueue many jobs in the transaction of ``session``; they come back in input order.

    psycopg: pgq's own bulk path (binary COPY, or one INSERT). Other drivers: every job
    is checked first, then ``pgq.enqueue()`` runs once per job.
    """
    connection = _connection(session, "enqueue_many")
    raw = connection.connection.driver_connection
    if isinstance(raw, psycopg.Connection):
        return app.enqueue_many_sync(jobs, conn=raw)
    params = [_sql_params(app, as_spec(job)) for job in jobs]  # all refused before any write
    ids = [connection.execute(_ENQUEUE, p).scalar_one() for p in params]
    return _read_jobs(connection.execute(_JOBS, {"ids": ids}).mappings().all(), ids)


async def enqueue_async(
    session: AsyncSession | AsyncConnection,
    app: App,
    task: str,
    args: Mapping[str, Any] | None = None,
    **options: Unpack[EnqueueOptions],
) -> Job:
    """``enqueue`` for an ``AsyncSession`` or a Core ``AsyncConnection``."""
    spec = JobSpec(task, args or {}, **options)
    connection = await _async_connection(session, "enqueue_async")
    raw = (await connection.get_raw_connection()).driver_connection
    if isinstance(raw, psycopg.AsyncConnection):
        return await app.enqueue(task, args, conn=raw, **options)
    job_id = (await connection.execute(_ENQUEUE, _sql_params(app, spec))).scalar_one()
    return _read_jobs((await connection.execute(_JOBS, {"ids": [job_id]})).mappings().all(), [job_id])[0]


async def enqueue_many_async(
    session: AsyncSession | AsyncConnection, app: App, jobs: Iterable[JobSpec | Mapping[str, Any]]
) -> list[Job]:
    """``enqueue_many`` for an ``AsyncSession`` or a Core ``AsyncConnection``."""
    connection = await _async_connection(session, "enqueue_many_async")
    raw = (await connection.get_raw_connection()).driver_connection
    if isinstance(raw, psycopg.AsyncConnection):
        return await app.enqueue_many(jobs, conn=raw)
    params = [_sql_params(app, as_spec(job)) for job in jobs]  # all refused before any write
    ids = [(await connection.execute(_ENQUEUE, p)).scalar_one() for p in params]
    return _read_jobs((await connection.execute(_JOBS, {"ids": ids})).mappings().all(), ids)


def _connection(session: Session | Connection, what: str) -> Connection:
    connection = session.connection() if isinstance(session, Session) else session
    if not isinstance(connection, Connection):
        raise TypeError(
            f"{what} takes a sqlalchemy Session or Connection, got {type(session).__name__}; "
            f"use {what}_async for an AsyncSession"
        )
    return connection


async def _async_connection(session: AsyncSession | AsyncConnection, what: str) -> AsyncConnection:
    connection = await session.connection() if isinstance(session, AsyncSession) else session
    if not isinstance(connection, AsyncConnection):
        raise TypeError(
            f"{what} takes a sqlalchemy AsyncSession or AsyncConnection, got {type(session).__name__}; "
            f"use {what.removesuffix('_async')} for a Session"
        )
    return connection


def _read_jobs(rows: Sequence[RowMapping], ids: Sequence[int]) -> list[Job]:
    """The jobs ``pgq.enqueue()`` returned the ids of, in that order (a repeated
    idempotency key returns the same job twice)."""
    by_id = {int(row["id"]): from_row(dict(row)) for row in rows}
    return [by_id[job_id] for job_id in ids]


def _sql_params(app: App, spec: JobSpec) -> dict[str, Any]:
    """pgq.enqueue()'s parameters, checked by the app first (its tasks, their defaults,
    its json_default), so that both paths refuse the same calls with the same errors."""
    new = app._validate(spec)
    return {**dataclasses.asdict(new), "args": _json.dumps(new.args)}
