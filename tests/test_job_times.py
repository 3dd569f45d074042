"""run_at and delay have a defined range, refused before the write by the library, the
HTTP API and the table itself; every reader reads any timestamp a row can hold."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
import psycopg
import pytest
from alembic import command
from psycopg import sql

import pgq
from pgq._times import LATEST, MAX_DELAY, TABLE_MAX, TABLE_MIN
from pgq.migrate import _alembic_config, migrate
from tests.conftest import pgq_cli
from tests.helpers import count_rows

pytestmark = pytest.mark.anyio

FAR_ZONE = dt.timezone(dt.timedelta(hours=-14))
OUT_OF_RANGE_RUN_AT = [
    dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=FAR_ZONE),  # year 10000 in UTC: unreadable once written
    dt.datetime(1, 1, 1, tzinfo=dt.UTC),
    dt.datetime(9999, 1, 1, tzinfo=dt.UTC),
    dt.datetime(1970, 1, 1, tzinfo=dt.UTC) - dt.timedelta(microseconds=1),
]


@pytest.mark.parametrize("run_at", OUT_OF_RANGE_RUN_AT, ids=["year-10K-in-UTC", "year-1", "max", "before-min"])
async def test_enqueue_refuses_a_run_at_out_of_range_and_writes_nothing(dsn: str, run_at: dt.datetime) -> None:
    async with pgq.App(dsn) as app:
        with pytest.raises(ValueError, match="run_at must be in the years 1970 to 9998"):
            await app.enqueue("t", run_at=run_at)
        with pytest.raises(ValueError, match="run_at must be in the years 1970 to 9998"):
            await app.enqueue_many([{"task": "t"}, {"task": "t", "run_at": run_at}])
        with pytest.raises(ValueError, match="run_at must be in the years 1970 to 9998"):
            app.enqueue_sync("t", run_at=run_at)
    assert count_rows(dsn) == 0


@pytest.mark.parametrize(
    ("delay", "message"),
    [
        (float("nan"), "delay must be a finite number of seconds, got nan"),
        (float("inf"), "delay must be a finite number of seconds"),
        (MAX_DELAY.total_seconds() + 1, "delay must be from 0 to"),
        (dt.timedelta(days=3_000_000), "delay must be at most 36500 days"),
        (-1, "delay must be from 0 to"),
    ],
)
async def test_enqueue_refuses_a_delay_out_of_range_with_a_clear_message(dsn: str, delay: Any, message: str) -> None:
    async with pgq.App(dsn) as app:
        with pytest.raises(ValueError, match=message):
            await app.enqueue("t", delay=delay)
    assert count_rows(dsn) == 0


async def test_the_bounds_themselves_are_accepted_and_read_back(dsn: str) -> None:
    async with pgq.App(dsn) as app:
        # The last and first accepted years, in the offsets that take them furthest out.
        latest = dt.datetime(9998, 12, 31, 23, 59, 59, tzinfo=dt.timezone(-dt.timedelta(hours=23, minutes=59)))
        late = await app.enqueue("t", run_at=latest)
        early = await app.enqueue("t", run_at=dt.datetime(1970, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=23))))
        longest = await app.enqueue("t", delay=MAX_DELAY)
        assert TABLE_MIN < latest < TABLE_MAX
        assert (await app.get_job(late.id)).run_at == latest
        assert (await app.get_job(early.id)).state == pgq.JobState.QUEUED
        assert (await app.get_job(longest.id)).state == pgq.JobState.SCHEDULED
        (stats,) = await app.queue_stats()
    # A run_at in 1970 means "ready now": it has waited since it was created, not 56 years.
    assert stats.oldest_queued_seconds is not None and stats.oldest_queued_seconds < 60


@pytest.mark.parametrize(
    ("body", "field", "mentions"),
    [
        ({"run_at": "9999-12-31T23:59:59-14:00"}, "run_at", "run_at must be in the years 1970 to 9998"),
        ({"run_at": "0001-01-01T00:00:00+14:00"}, "run_at", "run_at must be in the years 1970 to 9998"),
        ({"delay": "NaN"}, "delay", "finite number"),
    ],
)
async def test_post_jobs_refuses_a_time_out_of_range_with_422_naming_the_field(
    api: httpx.AsyncClient, dsn: str, body: dict[str, Any], field: str, mentions: str
) -> None:
    raw = json.dumps({"task": "t", **body}).replace('"NaN"', "NaN").encode()
    response = await api.post("/jobs", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert [f["field"] for f in response.json()["error"]["details"]["fields"]] == [field]
    assert mentions in response.text
    assert count_rows(dsn) == 0


@pytest.mark.parametrize("value", ["infinity", "-infinity", "10000-01-01 00:00+00", "0001-01-01 00:00+00"])
def test_the_table_refuses_a_time_python_cannot_read(conn: psycopg.Connection[Any], value: str) -> None:
    with pytest.raises(psycopg.errors.CheckViolation) as info:
        conn.execute("INSERT INTO pgq.jobs (task, run_at) VALUES ('t', %s)", [value])
    assert info.value.diag.constraint_name == "jobs_times_in_range"
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "INSERT INTO pgq.jobs (task, state, attempt, finished_at) VALUES ('t', 'cancelled', 0, %s)", [value]
        )


def test_migration_moves_rows_written_before_the_constraint_into_range(empty_dsn: str) -> None:
    command.upgrade(_alembic_config(empty_dsn), "0007")
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO pgq.jobs (task, state, run_at) VALUES ('t', 'scheduled', 'infinity'), "
            "('t', 'queued', '-infinity'), ('t', 'scheduled', '9999-12-31 23:59:59-14')"
        )
    migrate(empty_dsn)
    with pgq.App(empty_dsn) as app:
        jobs = sorted(app.list_jobs_sync(), key=lambda j: j.id)
    assert [(j.state.value, j.run_at.year) for j in jobs] == [
        ("scheduled", 9998),
        ("queued", 1970),
        ("scheduled", 9998),
    ]


async def test_every_reader_reads_a_row_with_times_beyond_pythons_range(api: httpx.AsyncClient, dsn: str) -> None:
    """A table without the constraint (dropped, or restored from elsewhere) and a session
    in a far time zone: no reader may fail on what the table holds."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ALTER DOMAIN pgq.job_time DROP CONSTRAINT jobs_times_in_range")
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET timezone = 'Pacific/Kiritimati'").format(sql.Identifier(conn.info.dbname))
        )
        row = conn.execute(
            "INSERT INTO pgq.jobs (task, state, run_at, created_at, attempt, finished_at) "
            "VALUES ('t', 'cancelled', '9999-12-31 23:59:59-14', '-infinity', 0, 'infinity') RETURNING id"
        ).fetchone()
    assert row is not None
    jid = int(row[0])
    async with pgq.App(dsn) as app:
        job = await app.get_job(jid)
        assert (job.run_at, job.finished_at) == (LATEST, LATEST) and job.created_at.year == 1
        assert [j.id for j in await app.list_jobs()] == [jid]
    with pgq.App(dsn) as app:
        assert app.get_job_sync(jid).run_at == LATEST
    one = await api.get(f"/jobs/{jid}")
    assert one.status_code == 200 and one.json()["run_at"] == "9999-12-31T23:59:59.999999+00:00"
    assert (await api.get("/jobs")).json()["jobs"][0]["id"] == jid
    assert (await api.get(f"/jobs/{jid}/wait", params={"timeout": 0})).status_code == 200
    events = await api.get(f"/jobs/{jid}/events")
    assert events.status_code == 200 and "event: end" in events.text
    for zone in ("UTC", "America/Los_Angeles", "Asia/Tokyo"):  # year 1 west of UTC, 9999 east of it
        listed = pgq_cli("jobs", dsn=dsn, env={"TZ": zone})
        shown = pgq_cli("jobs", str(jid), dsn=dsn, env={"TZ": zone})
        as_json = pgq_cli("jobs", str(jid), "--json", dsn=dsn, env={"TZ": zone})
        assert listed.returncode == shown.returncode == as_json.returncode == 0, listed.stderr + shown.stderr
        assert "cancelled" in listed.stdout and "9999-12-31" in shown.stdout
        assert json.loads(as_json.stdout)["finished_at"].startswith("9999-12-31")
