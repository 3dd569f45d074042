"""The operator's half of the App: queue limits and pauses, statistics, schedules,
workers, and the health check that API probes use.

Like the producer, each method drives one operation of the query layer
(``pgq.db.queues``, ``schedules``, ``workers``, ``schema``) on the App's pool.
"""

from __future__ import annotations

import datetime as dt
from typing import TypedDict, Unpack

from pgq import _db
from pgq.connections import Connections
from pgq.db import queues, schedules, schema, workers
from pgq.monitoring import QueueStats, WorkerInfo
from pgq.queues import QueueLimits, QueuePause
from pgq.schedule import ScheduleState
from pgq.spec import reject_unknown, seconds


class LimitOptions(TypedDict, total=False):
    """The keyword arguments of ``set_queue_limits`` (None removes a limit)."""

    max_running: int | None
    rate_limit: int | None
    rate_period: float | dt.timedelta | None


def _limits(queue: str, options: LimitOptions) -> QueueLimits:
    reject_unknown(options, LimitOptions, "queue limits")
    period = options.get("rate_period")
    return QueueLimits(
        queue, options.get("max_running"), options.get("rate_limit"), None if period is None else seconds(period)
    )


class Admin(Connections):
    async def set_queue_limits(self, queue: str, **limits: Unpack[LimitOptions]) -> QueueLimits:
        """Limit a queue across all workers, from the next claim on; None removes a limit.

        ``max_running``: jobs running at once. ``rate_limit`` per ``rate_period`` (seconds
        or timedelta): job starts in any window of that length.
        """
        return await self.run(queues.set_limits(_limits(queue, limits)))

    def set_queue_limits_sync(self, queue: str, **limits: Unpack[LimitOptions]) -> QueueLimits:
        return self.run_sync(queues.set_limits(_limits(queue, limits)))

    async def queue_limits(self) -> list[QueueLimits]:
        """Every queue with limits (the rows of pgq.queues)."""
        return await self.run(queues.list_limits())

    def queue_limits_sync(self) -> list[QueueLimits]:
        return self.run_sync(queues.list_limits())

    async def pause_queue(self, queue: str) -> QueuePause:
        """Stop every worker from claiming jobs of ``queue`` until it is resumed.

        Jobs already running finish. Takes effect for every claim that starts after this
        returns; pausing a paused queue keeps its first ``paused_at``.
        """
        return await self.run(queues.pause(queue))

    def pause_queue_sync(self, queue: str) -> QueuePause:
        return self.run_sync(queues.pause(queue))

    async def resume_queue(self, queue: str) -> QueuePause:
        """Let workers claim from ``queue`` again, and wake them at once (NOTIFY)."""
        return await self.run(queues.resume(queue))

    def resume_queue_sync(self, queue: str) -> QueuePause:
        return self.run_sync(queues.resume(queue))

    async def paused_queues(self) -> list[QueuePause]:
        """The paused queues, by name."""
        return await self.run(queues.list_paused())

    def paused_queues_sync(self) -> list[QueuePause]:
        return self.run_sync(queues.list_paused())

    async def queue_stats(self) -> list[QueueStats]:
        """Per queue: jobs by state, the oldest ready job's wait, jobs finished in the last minute."""
        return await self.run(queues.stats())

    def queue_stats_sync(self) -> list[QueueStats]:
        return self.run_sync(queues.stats())

    async def list_schedules(self) -> list[ScheduleState]:
        """Every schedule in ``pgq.schedules`` (from any app), soonest next run first."""
        return await self.run(schedules.list_schedules())

    def list_schedules_sync(self) -> list[ScheduleState]:
        return self.run_sync(schedules.list_schedules())

    async def delete_schedule(self, name: str) -> None:
        """Remove a schedule from ``pgq.schedules`` (a worker that still declares it writes it again)."""
        await self.run(schedules.delete(name))

    def delete_schedule_sync(self, name: str) -> None:
        self.run_sync(schedules.delete(name))

    async def list_workers(self) -> list[WorkerInfo]:
        """The worker processes registered in pgq.workers, with their last heartbeat."""
        return await self.run(workers.list_workers())

    def list_workers_sync(self) -> list[WorkerInfo]:
        return self.run_sync(workers.list_workers())

    async def check_database(self) -> None:
        """Raise unless the database answers, through the pool, at the schema revision
        this pgq needs (DatabaseUnavailableError, SchemaNotMigratedError). For health
        probes: it costs one query on a pooled connection, never a new connection."""
        if error := _db.version_error(await self.run(schema.revision())):
            raise error
