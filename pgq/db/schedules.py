"""Statements on pgq.schedules: listing and removing rows (sans-IO, for the App and the
CLI), and the leader's scheduler steps (async, on the connection of its transaction)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from pgq import _json
from pgq._queries import QUERIES
from pgq.db import Conn
from pgq.db.driver import Op
from pgq.errors import ScheduleNotFoundError
from pgq.schedule import Schedule, ScheduleState


def list_schedules() -> Op[list[ScheduleState]]:
    """``schedule_list``: soonest next run first, with the live workers that declare each."""
    rows = yield QUERIES["schedule_list"], {}
    return [ScheduleState(**r) for r in rows]


def delete(name: str) -> Op[None]:
    """``schedule_delete``; ScheduleNotFoundError when there is none by that name."""
    rows = yield QUERIES["schedule_delete"], {"name": name}
    if not rows:
        raise ScheduleNotFoundError(f"no schedule named {name!r} (`pgq schedules` lists them)")


# -- the leader's scheduler (pgq/worker/scheduler.py), each inside its transaction ----


@dataclasses.dataclass(frozen=True, slots=True)
class Upserted:
    name: str
    next_run_at: dt.datetime
    inserted: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Due:
    """A due schedule's row, locked for the caller's transaction, and the database's now()."""

    name: str
    next_run_at: dt.datetime
    now: dt.datetime
    fields: dict[str, Any]

    def schedule(self) -> Schedule:
        """The row as a Schedule; ConfigError/ValueError when it no longer makes a valid one."""
        return Schedule(**self.fields)


@dataclasses.dataclass(frozen=True, slots=True)
class Orphan:
    name: str
    task: str
    declared_at: dt.datetime


async def clock_now(conn: Conn) -> dt.datetime:
    """``clock_now``: ticks are computed from the database's clock, never a worker's."""
    cur = await conn.execute(QUERIES["clock_now"])
    row = await cur.fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


async def upsert_many(conn: Conn, schedules: Sequence[Schedule], now: dt.datetime) -> list[Upserted]:
    """``schedule_upsert_many``: write an app's schedules, first ticks after ``now``; the rows changed."""
    payload = [
        {**{f.name: getattr(s, f.name) for f in dataclasses.fields(s)}, "next_run_at": s.next_tick(now).isoformat()}
        for s in schedules
    ]
    cur = await conn.execute(QUERIES["schedule_upsert_many"], {"schedules": Jsonb(payload, dumps=_json.dumps)})
    return [Upserted(str(name), next_run_at, bool(inserted)) for name, next_run_at, inserted in await cur.fetchall()]


async def lock_next_due(conn: Conn, exclude: Sequence[str]) -> Due | None:
    """``schedule_lock_next_due``: the due schedule with the oldest tick (None: none due)."""
    cur = conn.cursor(row_factory=dict_row)
    row = await (await cur.execute(QUERIES["schedule_lock_next_due"], {"exclude": list(exclude)})).fetchone()
    if row is None:
        return None
    fields = {f.name: row[f.name] for f in dataclasses.fields(Schedule)}
    return Due(row["name"], row["next_run_at"], row["now"], fields)


async def advance(
    conn: Conn, name: str, next_run_at: dt.datetime, last_run_at: dt.datetime | None, last_job_id: int | None
) -> None:
    """``schedule_advance``: move a locked schedule to its next tick, remembering the run enqueued."""
    params = {"name": name, "next_run_at": next_run_at, "last_run_at": last_run_at, "last_job_id": last_job_id}
    await conn.execute(QUERIES["schedule_advance"], params)


async def next_due_in(conn: Conn, exclude: Sequence[str]) -> float | None:
    """``schedule_next_due_in``: seconds until the next schedule is due (None: none)."""
    cur = await conn.execute(QUERIES["schedule_next_due_in"], {"exclude": list(exclude)})
    row = await cur.fetchone()
    return None if row is None or row[0] is None else float(row[0])


async def orphaned_due(conn: Conn) -> list[Orphan]:
    """``schedule_orphaned_due``: due schedules that no live worker declares."""
    cur = await conn.execute(QUERIES["schedule_orphaned_due"])
    return [Orphan(str(name), str(task), declared_at) for name, task, declared_at in await cur.fetchall()]
