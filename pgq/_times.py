"""The times a job may carry, and reading any timestamp the table can hold.

Postgres stores timestamps from 4713 BC to 294276 AD and ``infinity``; Python's
``datetime`` ends at years 1 and 9999, *in the session's time zone*. A run_at that
Postgres accepts but Python cannot read back broke every reader of the table, so:

- ``check_run_at``/``check_delay`` refuse, before the write, a run_at whose year (as
  written, in its own offset) is not 1970 to 9998, and a delay outside [0, MAX_DELAY].
  The rule is on the written year so that the HTTP API's schema can state it exactly
  (a pattern); with any offset (under 24 h) such a time lies in [TABLE_MIN, TABLE_MAX),
  which the constraint jobs_times_in_range (of the domain pgq.job_time) enforces on every time of a job row;
- ``TotalTimestamptzLoader`` reads a timestamp beyond Python's range (a row written
  before that constraint, or in a far time zone) as ``datetime.max``/``datetime.min``
  in UTC instead of raising: a reader must never fail on a row the table holds.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import psycopg
from psycopg.adapt import Buffer, Loader
from psycopg.pq import Format

RUN_AT_FIRST_YEAR = 1970
"""Earliest accepted year of a run_at: a time in the past only means "ready now"."""
RUN_AT_LAST_YEAR = 9998
"""Latest accepted year: a year before Python's end, so any session time zone can read it."""
TABLE_MIN = dt.datetime(1969, 12, 31, tzinfo=dt.UTC)
"""The earliest time a job row may hold (jobs_times_in_range, on the domain pgq.job_time)."""
TABLE_MAX = dt.datetime(9999, 1, 2, tzinfo=dt.UTC)
"""The first time a job row may not hold."""
MAX_DELAY = dt.timedelta(days=100 * 365)
"""Longest accepted delay (about 100 years)."""

LATEST = dt.datetime.max.replace(tzinfo=dt.UTC)
EARLIEST = dt.datetime.min.replace(tzinfo=dt.UTC)


def check_run_at(run_at: object) -> dt.datetime:
    """``run_at`` if it is an aware datetime in the accepted range, else TypeError/ValueError."""
    if not isinstance(run_at, dt.datetime):
        raise TypeError(f"run_at must be a datetime, got {run_at!r}")
    if run_at.tzinfo is None or run_at.utcoffset() is None:
        raise ValueError("run_at must be timezone-aware (e.g. datetime.now(timezone.utc)); naive times are ambiguous")
    if not RUN_AT_FIRST_YEAR <= run_at.year <= RUN_AT_LAST_YEAR:
        raise ValueError(
            f"run_at must be in the years {RUN_AT_FIRST_YEAR} to {RUN_AT_LAST_YEAR}, got {run_at.isoformat()}"
        )
    return run_at


def check_delay(delay: object) -> dt.timedelta:
    """``delay`` (seconds or a timedelta) as a timedelta from 0 to MAX_DELAY, else TypeError/ValueError."""
    if isinstance(delay, dt.timedelta):
        td = delay
    elif isinstance(delay, int | float) and not isinstance(delay, bool):
        if not math.isfinite(delay):
            raise ValueError(f"delay must be a finite number of seconds, got {delay!r}")
        if not 0 <= delay <= MAX_DELAY.total_seconds():
            raise ValueError(f"delay must be from 0 to {MAX_DELAY.total_seconds():.0f} seconds, got {delay!r}")
        td = dt.timedelta(seconds=delay)
    else:
        raise TypeError(f"delay must be seconds (a number) or a timedelta, got {delay!r}")
    if td < dt.timedelta(0):
        raise ValueError(f"delay must not be negative, got {delay!r}")
    if td > MAX_DELAY:
        raise ValueError(f"delay must be at most {MAX_DELAY.days} days, got {delay!r}")
    return td


_TIMESTAMPTZ = psycopg.postgres.types["timestamptz"].oid


class TotalTimestamptzLoader(Loader):
    """The default timestamptz loader, except that values Python cannot hold are
    clamped: ``infinity`` and years past 9999 read as LATEST, the rest as EARLIEST."""

    def __init__(self, oid: int, context: Any = None) -> None:
        super().__init__(oid, context)
        inner = psycopg.adapters.get_loader(_TIMESTAMPTZ, Format.TEXT)
        assert inner is not None
        self._inner = inner(oid, context)

    def load(self, data: Buffer) -> dt.datetime:
        try:
            value: dt.datetime = self._inner.load(data)
        except psycopg.DataError as exc:
            return EARLIEST if "too small" in str(exc) else LATEST
        return value


def make_total(
    target: psycopg.Connection[Any] | psycopg.AsyncConnection[Any] | psycopg.Cursor[Any] | psycopg.AsyncCursor[Any],
) -> None:
    """Let this connection (pgq's pools) or cursor (on a caller's connection) read every
    timestamp the table can hold (see the module doc)."""
    target.adapters.register_loader(_TIMESTAMPTZ, TotalTimestamptzLoader)


def is_total(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    return conn.adapters.get_loader(_TIMESTAMPTZ, Format.TEXT) is TotalTimestamptzLoader
