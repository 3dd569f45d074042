"""The one description of a job (pgq/job.py) against the live catalog and the API."""

from __future__ import annotations

import datetime as dt
import typing
from typing import Any

import psycopg
import pytest

import pgq
from pgq.api import schemas
from pgq.api.openapi import document
from pgq.job import COLUMN_TYPES, COLUMNS, Job, JobState, from_row


def test_job_fields_are_the_table_columns_in_order_with_their_types(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema = 'pgq' AND table_name = 'jobs' ORDER BY ordinal_position"
        ).fetchall()
    assert tuple(name for name, _, _ in rows) == COLUMNS
    assert {name: sql_type for name, sql_type, _ in rows} == COLUMN_TYPES
    hints = typing.get_type_hints(Job)
    for name, _, nullable in rows:
        optional = type(None) in typing.get_args(hints[name]) or hints[name] is Any
        assert optional == (nullable == "YES"), f"{name}: Python optional={optional}, SQL nullable={nullable}"


def test_a_job_read_back_is_built_from_every_column(dsn: str) -> None:
    with pgq.App(dsn) as app:
        job = app.enqueue_sync("t", {"a": 1}, idempotency_key="k")
        with psycopg.connect(dsn, row_factory=psycopg.rows.dict_row) as conn:
            row = conn.execute("SELECT *, 1 AS extra FROM pgq.jobs WHERE id = %s", [job.id]).fetchone()
        assert row is not None
        assert from_row(row) == app.get_job_sync(job.id)
        assert from_row(row).state is JobState.QUEUED


def test_the_api_job_model_and_openapi_are_generated_from_the_job_type() -> None:
    assert tuple(schemas.JobOut.model_fields) == COLUMNS
    published = document()["components"]["schemas"]["JobOut"]
    assert tuple(published["properties"]) == COLUMNS
    assert set(published["required"]) == set(COLUMNS)
    assert published["properties"]["state"]["enum"] == [s.value for s in JobState]
    assert published["properties"]["run_at"]["format"] == "date-time"


def test_every_job_the_api_returns_validates_against_the_published_model(dsn: str) -> None:
    with pgq.App(dsn) as app:
        job = app.enqueue_sync("t", {"a": 1}, run_at=dt.datetime(2040, 1, 1, tzinfo=dt.UTC))
        schemas.JobOut.model_validate(job.to_dict())


@pytest.mark.parametrize("bad", [{"id": 1}, {}])
def test_from_row_refuses_a_row_missing_columns(bad: dict[str, Any]) -> None:
    with pytest.raises(KeyError):
        from_row(bad)
