"""Periodic jobs: a schedule says which task to enqueue, with what, and when.

Schedules are declared in code (``@app.periodic`` or ``app.schedule``), validated at
once so a typo fails at import rather than at 3 a.m., written to ``pgq.schedules`` by
every worker at start, and enqueued by the leader (pgq/worker/scheduler.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from typing import Any, Literal, TypedDict, Unpack, cast, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pgq import _json, _ticks
from pgq.errors import ConfigError
from pgq.names import check_queue_name, check_task_name
from pgq.task import TaskOptions

Missed = Literal["run_once", "skip"]
"""After downtime: one catch-up run for the latest missed tick, or none."""
MISSED_POLICIES: tuple[str, ...] = get_args(Missed)

# Names end up in idempotency keys "pgq:schedule:<name>:<tick>", at most 255 characters.
SCHEDULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,199}$")


class ScheduleOptions(TypedDict, total=False):
    """The keyword arguments of ``app.periodic``, ``app.schedule`` and ``Schedule.define``,
    written once. ``cron`` (5 fields, evaluated in ``timezone``, default "UTC") or
    ``every`` (seconds or a timedelta), not both. ``missed`` ("run_once", the default, or
    "skip") says what happens to ticks missed while no worker ran. ``name`` defaults to
    the task's name; ``queue``, ``priority`` and ``max_attempts`` to the task's own."""

    cron: str | None
    every: float | dt.timedelta | None
    timezone: str
    args: Mapping[str, Any] | None
    name: str | None
    missed: str
    queue: str | None
    priority: int | None
    max_attempts: int | None


_LATEST_TICK_FIRST_WINDOW = dt.timedelta(minutes=1)


def every_seconds(every: float | dt.timedelta) -> int:
    """``every=`` as whole seconds (>= 1), or ConfigError."""
    if isinstance(every, dt.timedelta):
        seconds: object = every.total_seconds()
    elif isinstance(every, int | float) and not isinstance(every, bool):
        seconds = every
    else:
        raise ConfigError(f"every= must be seconds (a number) or a timedelta, got {every!r}")
    assert isinstance(seconds, int | float)
    if not seconds >= 1 or seconds != int(seconds):
        raise ConfigError(f"every= must be a whole number of seconds, at least 1, got {every!r}")
    return int(seconds)


@dataclasses.dataclass(frozen=True, slots=True)
class Schedule:
    """One periodic job. Exactly one of ``cron`` and ``every_seconds`` is set.

    ``queue``, ``priority`` and ``max_attempts`` left None take the task's defaults
    when the worker registers the schedule.
    """

    name: str
    task: str
    args: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    cron: str | None = None
    every_seconds: int | None = None
    timezone: str = "UTC"
    missed: Missed = "run_once"
    queue: str | None = None
    priority: int | None = None
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not SCHEDULE_NAME.fullmatch(self.name):
            raise ConfigError(
                f"schedule name {self.name!r} is invalid: start with a letter or '_', then up to 199 "
                "letters, digits, '_', '.', ':' or '-'"
            )
        where = f"schedule {self.name!r}"
        check_task_name(self.task)
        if self.cron is not None and self.every_seconds is not None:
            raise ConfigError(f"{where}: give either cron= or every=, not both")
        if self.cron is None and self.every_seconds is None:
            raise ConfigError(
                f"{where}: say when it runs: cron= (like '*/5 * * * *') or every= (seconds or a timedelta)"
            )
        if self.cron is not None:
            try:
                object.__setattr__(self, "cron", _ticks.normalize_cron(self.cron))
            except ValueError as exc:
                raise ConfigError(f"{where}: {exc}") from None
        if self.every_seconds is not None and (
            isinstance(self.every_seconds, bool) or not isinstance(self.every_seconds, int) or self.every_seconds < 1
        ):
            raise ConfigError(f"{where}: every_seconds must be a whole number >= 1, got {self.every_seconds!r}")
        self._check_timezone(where)
        if self.missed not in MISSED_POLICIES:
            raise ConfigError(f"{where}: missed= must be 'run_once' or 'skip', got {self.missed!r}")
        if self.queue is not None:
            check_queue_name(self.queue)
        # TaskOptions checks the ranges of priority and max_attempts.
        TaskOptions(
            priority=0 if self.priority is None else self.priority,
            max_attempts=1 if self.max_attempts is None else self.max_attempts,
        )

    def _check_timezone(self, where: str) -> None:
        if not isinstance(self.timezone, str) or not self.timezone:
            raise ConfigError(f"{where}: timezone= must be an IANA name like 'Europe/Paris', got {self.timezone!r}")
        if self.every_seconds is not None and self.timezone != "UTC":
            raise ConfigError(
                f"{where}: timezone= applies to cron= schedules only; every= counts real seconds in any zone"
            )
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"{where}: unknown time zone {self.timezone!r} (use an IANA name like 'Europe/Paris' or 'UTC')"
            ) from None

    @classmethod
    def define(
        cls, task: str, *, json_default: _json.JsonDefault | None = None, **options: Unpack[ScheduleOptions]
    ) -> Schedule:
        """Build a schedule from the friendly arguments of ``app.periodic``/``app.schedule``."""
        unknown = set(options) - set(ScheduleOptions.__annotations__)
        if unknown:  # the TypedDict binds callers checked by mypy; others are told here
            raise TypeError(
                f"unknown schedule options {sorted(unknown)}; allowed: {list(ScheduleOptions.__annotations__)}"
            )
        every = options.get("every")
        name = options.get("name")
        return cls(
            name=name if name is not None else task,
            task=task,
            args=_json.check_args(options.get("args") or {}, json_default),
            cron=options.get("cron"),
            every_seconds=every_seconds(every) if every is not None else None,
            timezone=options.get("timezone", "UTC"),
            missed=cast(Missed, options.get("missed", "run_once")),
            queue=options.get("queue"),
            priority=options.get("priority"),
            max_attempts=options.get("max_attempts"),
        )

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def timing(self) -> str:
        """How it repeats, for people: the cron expression (and zone) or 'every N s'."""
        if self.cron is not None:
            return self.cron if self.timezone == "UTC" else f"{self.cron} ({self.timezone})"
        return f"every {self.every_seconds} s"

    def next_tick(self, after: dt.datetime) -> dt.datetime:
        """The first tick strictly after ``after``, in UTC."""
        if self.cron is not None:
            return _ticks.next_cron_tick(self.cron, self.zone, after)
        assert self.every_seconds is not None
        return _ticks.next_interval_tick(self.every_seconds, after)

    def latest_tick(self, first: dt.datetime, now: dt.datetime) -> dt.datetime:
        """The last tick at or before ``now``, given that ``first`` (<= now) is a tick."""
        if self.every_seconds is not None:
            return max(first, self.next_tick(now) - dt.timedelta(seconds=self.every_seconds))
        # Look back over a growing window, so a minutely schedule down for a month
        # costs a few steps, not 40,000.
        window = _LATEST_TICK_FIRST_WINDOW
        while True:
            start = now - window
            if start <= first:
                tick = first
                break
            tick = self.next_tick(start)
            if tick <= now:
                break
            window *= 4
        while (following := self.next_tick(tick)) <= now:
            tick = following
        return tick

    def resolved(self, defaults: TaskOptions | None) -> Schedule:
        """This schedule with queue, priority and max_attempts filled from the task's defaults."""
        task = defaults or TaskOptions()
        return dataclasses.replace(
            self,
            queue=self.queue if self.queue is not None else task.queue,
            priority=self.priority if self.priority is not None else task.priority,
            max_attempts=self.max_attempts if self.max_attempts is not None else task.max_attempts,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class ScheduleState:
    """One row of ``pgq.schedules``: a schedule and where it stands."""

    name: str
    task: str
    queue: str
    args: dict[str, Any]
    priority: int
    max_attempts: int
    cron: str | None
    every_seconds: int | None
    timezone: str
    missed: str
    next_run_at: dt.datetime
    last_run_at: dt.datetime | None
    last_job_id: int | None
    updated_at: dt.datetime
    declared_by: list[str]
    """The live workers (pgq.workers ids) whose app declares this schedule."""
    orphaned: bool
    """No live worker declares it: the leader does not run it."""
    last_declared_at: dt.datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (timestamps as ISO 8601 in UTC), for the CLI."""
        return _json.row_as_json(self, utc=True)
