"""Prepared statements through PgBouncer 1.18 in transaction mode (issue 13's failures).

psycopg prepares a statement on its sixth use on a connection. Through a transaction
pooler the next transaction may run on another server connection, where that statement
does not exist (or another client's statement of the same name does). pgq's default
(``auto``) notices the pooler and never prepares there.
"""

from __future__ import annotations

import asyncio
import dataclasses

import psycopg
import pytest

import pgq
from pgq.settings import Settings

pytestmark = pytest.mark.anyio


def _app(dsn: str, mode: str) -> pgq.App:
    return pgq.App(dsn, settings=dataclasses.replace(Settings(), prepared_statements=mode), pool_max_size=1)  # type: ignore[arg-type]


async def _use_twice_over_two_servers(app: pgq.App, bouncer_dsn: str) -> None:
    """Eight uses on one server connection (psycopg prepares on the sixth), then more
    while another client holds that server connection in a transaction, so PgBouncer
    lends a different one."""
    jobs = [await app.enqueue("noop") for _ in range(8)]
    for job in jobs:
        await app.cancel(job.id)
    async with await psycopg.AsyncConnection.connect(bouncer_dsn) as other:
        await other.execute("SELECT 1")  # a transaction is open: its server connection is taken
        jobs.append(await app.enqueue("noop"))
        for job in jobs[:8]:
            assert (await app.retry(job.id)).state is pgq.JobState.QUEUED


@pytest.mark.parametrize("mode", ["auto", "off"])
async def test_producer_calls_work_through_transaction_pooling(bouncer_dsn: str, mode: str) -> None:
    async with _app(bouncer_dsn, mode) as app:
        await _use_twice_over_two_servers(app, bouncer_dsn)


async def test_prepared_statements_on_break_through_transaction_pooling(bouncer_dsn: str) -> None:
    """What pgq did before PGQ_PREPARED_STATEMENTS (and still does when set to on)."""
    async with _app(bouncer_dsn, "on") as app:
        with pytest.raises(psycopg.errors.InvalidSqlStatementName):
            await _use_twice_over_two_servers(app, bouncer_dsn)


async def test_concurrent_enqueue_many_batches_through_transaction_pooling(bouncer_dsn: str, dsn: str) -> None:
    """Issue 13: 10 of 60 enqueue_many batches raised DuplicatePreparedStatement."""
    apps = [pgq.App(bouncer_dsn, pool_max_size=4) for _ in range(3)]
    try:

        async def batches(app: pgq.App) -> int:
            enqueued = 0
            for _ in range(20):
                results = await asyncio.gather(*(app.enqueue_many([{"task": "noop"}] * 10) for _ in range(4)))
                enqueued += sum(len(r) for r in results)
            return enqueued

        counts = await asyncio.gather(*(batches(app) for app in apps))
    finally:
        for app in apps:
            await app.close()
    assert sum(counts) == 3 * 20 * 4 * 10
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM pgq.jobs").fetchone() == (2400,)


def test_prepared_statements_setting_is_read_and_checked() -> None:
    assert Settings.from_env({"PGQ_PREPARED_STATEMENTS": "OFF"}).prepared_statements == "off"
    assert Settings.from_env({}).prepared_statements == "auto"
    with pytest.raises(pgq.ConfigError, match="PGQ_PREPARED_STATEMENTS must be auto, on or off, got 'sometimes'"):
        Settings.from_env({"PGQ_PREPARED_STATEMENTS": "sometimes"})
