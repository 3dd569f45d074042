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
from psycopg_pool import AsyncConnectionPool

from pgq.db import driver, enqueue
from pgq.db import schedules as stored
from pgq.errors import ConfigError
from pgq.schedule import Schedule
from pgq.spec import JobSpec, validate
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
            changed = await stored.upsert_many(conn, resolved, await stored.clock_now(conn))
        for row in changed:
            log.info(
                "schedule %s %s; next run at %s",
                row.name,
                "registered" if row.inserted else "updated",
                row.next_run_at.isoformat(),
            )
        return [row.name for row in changed]

    async def run_once(self) -> ScheduleReport:
        """Enqueue every due run (one transaction each) and say when the next is due."""
        enqueued: list[EnqueuedRun] = []
        broken: list[str] = []
        async with self.pool.connection() as conn:
            for _ in range(_MAX_RUNS_PER_ROUND):
                async with conn.transaction():
                    due = await stored.lock_next_due(conn, broken)
                    if due is None:
                        break
                    try:
                        schedule = due.schedule()
                        step = plan(schedule, due.next_run_at, due.now, self.grace)
                    except (ConfigError, ValueError) as exc:
                        log.error("schedule %s cannot be computed, skipping it: %s", due.name, exc)
                        broken.append(due.name)
                        continue
                    job_id = await self._enqueue(conn, schedule, step.run_at) if step.run_at else None
                    await stored.advance(conn, schedule.name, step.next_run_at, step.run_at, job_id)
                self._log_step(schedule, due.next_run_at, step)
                if step.run_at is not None:
                    enqueued.append(EnqueuedRun(schedule.name, step.run_at, job_id))
            wake_in = await stored.next_due_in(conn, broken)
            orphans = await stored.orphaned_due(conn)
        self._log_orphans(orphans)
        return ScheduleReport(enqueued=enqueued, wake_in=wake_in)

    def _log_orphans(self, orphans: list[stored.Orphan]) -> None:
        """Say once per schedule that it is skipped because no live worker declares it."""
        for orphan in orphans:
            name, task, declared_at = orphan.name, orphan.task, orphan.declared_at
            if name not in self._orphans_logged:
                log.warning(
                    "schedule %s (task %s) is declared by no live worker since %s: not run until a worker of its "
                    "app starts (`pgq schedules delete %s` removes it)",
                    name,
                    task,
                    declared_at.isoformat(),
                    name,
                )
        self._orphans_logged = {orphan.name for orphan in orphans}

    @staticmethod
    async def _enqueue(conn: psycopg.AsyncConnection[Any], schedule: Schedule, tick: dt.datetime) -> int | None:
        """The run's job, through the producer's own validation and insert; None when
        the tick's idempotency key already holds a job (enqueued before)."""
        spec = JobSpec(
            schedule.task,
            schedule.args,
            schedule.queue,
            schedule.priority,
            run_at=tick,
            max_attempts=schedule.max_attempts,
            idempotency_key=idempotency_key(schedule.name, tick),
        )
        job, new = await driver.run_async(conn, enqueue.insert(validate(spec, None)))
        return job.id if new else None

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
