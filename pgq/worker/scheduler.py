"""The scheduler: the leader enqueues each due run of each schedule exactly once.

Exactly once, across any number of workers and leader changes, comes from the row,
not from leadership: each run is enqueued in one transaction that locks the due
schedule row (``FOR UPDATE SKIP LOCKED``), inserts the job and advances
``next_run_at``. A second leader (a stale one that has not noticed it lost the lease)
skips the locked row, or finds it no longer due once the first commits. The job's
idempotency key ``pgq:schedule:<name>:<tick>`` is belt and braces.

A tick that is due but at most ``grace`` late (a busy leader, a leader change) is
enqueued like any other, so none is lost. Ticks older than that were missed while
nothing ran: ``run_once`` enqueues one catch-up run for the latest of them,
``skip`` drops them and waits for the next tick.

A schedule runs only while a live worker declares it (its app's name list on its
``pgq.workers`` row): the leader of another app must not enqueue runs that no worker
can execute. Such an orphan waits, and catches up by its ``missed`` policy when a
worker of its app comes back.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from pgq import _json
from pgq._queries import QUERIES
from pgq.errors import ConfigError
from pgq.schedule import Schedule
from pgq.task import Task

log = logging.getLogger("pgq.scheduler")

GRACE = dt.timedelta(seconds=60)
"""A tick later than this when the leader gets to it counts as missed."""
_MAX_RUNS_PER_ROUND = 1000
"""Bounds one round, so a flood of catch-up ticks cannot starve the other duties."""


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """What to do with a due schedule: the run to enqueue (None: skip) and the next tick."""

    run_at: dt.datetime | None
    next_run_at: dt.datetime


def plan(schedule: Schedule, due: dt.datetime, now: dt.datetime, grace: dt.timedelta = GRACE) -> Plan:
    """Decide the run for a schedule whose next tick ``due`` has come (``due <= now``)."""
    if now - due <= grace:
        return Plan(run_at=due, next_run_at=schedule.next_tick(due))
    if schedule.missed == "run_once":
        latest = schedule.latest_tick(due, now)
        return Plan(run_at=latest, next_run_at=schedule.next_tick(latest))
    # skip: ticks within the grace still run, in the following steps.
    return Plan(run_at=None, next_run_at=schedule.next_tick(now - grace))


@dataclasses.dataclass(frozen=True, slots=True)
class EnqueuedRun:
    schedule: str
    run_at: dt.datetime
    job_id: int | None
    """None when a live job already held the run's idempotency key."""


@dataclasses.dataclass(frozen=True, slots=True)
class ScheduleReport:
    enqueued: list[EnqueuedRun]
    wake_in: float | None
    """Seconds until the next schedule is due (the leader wakes for it); None: none."""


def idempotency_key(name: str, tick: dt.datetime) -> str:
    return f"pgq:schedule:{name}:{tick.astimezone(dt.UTC).isoformat()}"


def _schedule_of(row: Mapping[str, Any]) -> Schedule:
    return Schedule(
        name=row["name"],
        task=row["task"],
        args=row["args"],
        cron=row["cron"],
        every_seconds=row["every_seconds"],
        timezone=row["timezone"],
        missed=row["missed"],
        queue=row["queue"],
        priority=row["priority"],
        max_attempts=row["max_attempts"],
    )


class Scheduler:
    def __init__(self, pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]], *, grace: dt.timedelta = GRACE) -> None:
        self.pool = pool
        self.grace = grace
        self._orphans_logged: set[str] = set()

    async def register(self, schedules: Iterable[Schedule], tasks: Mapping[str, Task]) -> list[str]:
        """Write this app's schedules to pgq.schedules; returns the names inserted or changed.

        A new schedule's first tick is the first one after now; an existing one keeps
        its next_run_at unless its timing changed, so restarting workers never skips
        or repeats a run.
        """
        resolved = [s.resolved(tasks[s.task].options if s.task in tasks else None) for s in schedules]
        if not resolved:
            return []
        for schedule in resolved:
            if schedule.task not in tasks:
                log.warning(
                    "schedule %s enqueues task %s, which this app does not register: workers of another app "
                    "must serve queue %s",
                    schedule.name,
                    schedule.task,
                    schedule.queue,
                )
        async with self.pool.connection() as conn, conn.transaction():
            row = await (await conn.execute(QUERIES["clock_now"])).fetchone()
            assert row is not None
            now: dt.datetime = row[0]
            payload = [
                {
                    **{f.name: getattr(s, f.name) for f in dataclasses.fields(s)},
                    "next_run_at": s.next_tick(now).isoformat(),
                }
                for s in resolved
            ]
            params = {"schedules": Jsonb(payload, dumps=_json.dumps)}
            changed = await (await conn.execute(QUERIES["schedule_upsert_many"], params)).fetchall()
        for name, next_run_at, inserted in changed:
            log.info(
                "schedule %s %s; next run at %s", name, "registered" if inserted else "updated", next_run_at.isoformat()
            )
        return [str(r[0]) for r in changed]

    async def run_once(self) -> ScheduleReport:
        """Enqueue every due run (one transaction each) and say when the next is due."""
        enqueued: list[EnqueuedRun] = []
        broken: list[str] = []
        async with self.pool.connection() as conn:
            for _ in range(_MAX_RUNS_PER_ROUND):
                async with conn.transaction():
                    cur = conn.cursor(row_factory=dict_row)
                    row = await (await cur.execute(QUERIES["schedule_lock_next_due"], {"exclude": broken})).fetchone()
                    if row is None:
                        break
                    try:
                        schedule = _schedule_of(row)
                        step = plan(schedule, row["next_run_at"], row["now"], self.grace)
                    except (ConfigError, ValueError) as exc:
                        log.error("schedule %s cannot be computed, skipping it: %s", row["name"], exc)
                        broken.append(row["name"])
                        continue
                    job_id = await self._enqueue(conn, schedule, step.run_at) if step.run_at else None
                    await conn.execute(
                        QUERIES["schedule_advance"],
                        {
                            "name": schedule.name,
                            "next_run_at": step.next_run_at,
                            "last_run_at": step.run_at,
                            "last_job_id": job_id,
                        },
                    )
                self._log_step(schedule, row["next_run_at"], step)
                if step.run_at is not None:
                    enqueued.append(EnqueuedRun(schedule.name, step.run_at, job_id))
            due = await (await conn.execute(QUERIES["schedule_next_due_in"], {"exclude": broken})).fetchone()
            orphans = await (await conn.execute(QUERIES["schedule_orphaned_due"])).fetchall()
        self._log_orphans(orphans)
        return ScheduleReport(enqueued=enqueued, wake_in=due[0] if due else None)

    def _log_orphans(self, orphans: list[tuple[Any, ...]]) -> None:
        """Say once per schedule that it is skipped because no live worker declares it."""
        for name, task, declared_at in orphans:
            if name not in self._orphans_logged:
                log.warning(
                    "schedule %s (task %s) is declared by no live worker since %s: not run until a worker of its "
                    "app starts (`pgq schedules delete %s` removes it)",
                    name,
                    task,
                    declared_at.isoformat(),
                    name,
                )
        self._orphans_logged = {row[0] for row in orphans}

    @staticmethod
    async def _enqueue(conn: psycopg.AsyncConnection[Any], schedule: Schedule, tick: dt.datetime) -> int | None:
        params = {
            "queue": schedule.queue,
            "task": schedule.task,
            "args": Jsonb(dict(schedule.args), dumps=_json.dumps),
            "priority": schedule.priority,
            "run_at": tick,
            "delay": None,
            "max_attempts": schedule.max_attempts,
            "idempotency_key": idempotency_key(schedule.name, tick),
        }
        row = await (await conn.execute(QUERIES["job_insert"], params)).fetchone()
        return None if row is None else int(row[0])

    @staticmethod
    def _log_step(schedule: Schedule, due: dt.datetime, step: Plan) -> None:
        if step.run_at is None:
            log.warning(
                "schedule %s: missed ticks from %s skipped (missed=skip); next run at %s",
                schedule.name,
                due.isoformat(),
                step.next_run_at.isoformat(),
            )
        elif step.run_at != due:
            log.warning(
                "schedule %s: ticks from %s to %s were missed; one catch-up run enqueued for %s (missed=run_once)",
                schedule.name,
                due.isoformat(),
                step.run_at.isoformat(),
                step.run_at.isoformat(),
            )
        else:
            log.info("schedule %s: run enqueued for %s", schedule.name, due.isoformat())
