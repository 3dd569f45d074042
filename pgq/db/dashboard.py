"""What each dashboard page reads (api/ui/), as sans-IO operations over named queries.

Each function yields ``(query, params)`` and receives rows, so ``App.run`` drives it
on the app's pool. Nothing here counts finished rows of the
whole table: the overview reuses ``queue_stats`` (estimates on large tables) and the
rest read ranges of partial indexes or of jobs_finished_at_idx.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from pgq._queries import QUERIES
from pgq.db import queues
from pgq.db import schedules as schedule_rows
from pgq.db import workers as worker_rows
from pgq.db.driver import Op
from pgq.job import FINAL_STATES, Job, JobState, from_row
from pgq.monitoring import QueueStats, WorkerInfo
from pgq.schedule import ScheduleState

MINUTES = 60
"""The overview's throughput chart covers this many minutes."""

WAITING_STATES = (JobState.WAITING.value, JobState.SCHEDULED.value, JobState.QUEUED.value, JobState.RETRYING.value)
"""Not started: what ui_jobs_cancel_waiting_matching cancels (and its confirmation counts)."""


@dataclasses.dataclass(frozen=True, slots=True)
class QueueRow:
    """One queue on the overview."""

    stats: QueueStats
    per_minute: list[int]
    failed_last_hour: int
    max_running: int | None = None
    rate_limit: int | None = None
    rate_period_seconds: float | None = None
    paused_at: dt.datetime | None = None

    @property
    def paused(self) -> bool:
        return self.paused_at is not None


@dataclasses.dataclass(frozen=True, slots=True)
class Overview:
    queues: list[QueueRow]
    workers_alive: int
    failed_last_hour: int
    finished_last_hour: int
    estimated: bool


def overview(lease: dt.timedelta) -> Op[Overview]:
    stats = yield from queues.stats()
    settings = {r["queue"]: r for r in (yield QUERIES["ui_queue_settings"], {})}
    minutes: dict[str, list[int]] = {}
    failed: dict[str, int] = {}
    for row in (yield QUERIES["ui_finished_per_minute"], {}):
        minutes.setdefault(row["queue"], [0] * MINUTES)[row["minute"]] += row["jobs"]
        if row["state"] == JobState.FAILED:
            failed[row["queue"]] = failed.get(row["queue"], 0) + row["jobs"]
    (alive,) = yield QUERIES["ui_workers_alive"], {"lease": lease}
    by_name = {s.queue: s for s in stats}
    for name in settings.keys() - by_name.keys():  # configured (limits) but no jobs
        by_name[name] = QueueStats(name, QueueStats.empty_counts(), None, {s.value: 0 for s in FINAL_STATES}, False)
    rows = []
    for name in sorted(by_name):
        limits = settings.get(name, {})
        rows.append(
            QueueRow(
                stats=by_name[name],
                per_minute=minutes.get(name, [0] * MINUTES),
                failed_last_hour=failed.get(name, 0),
                max_running=limits.get("max_running"),
                rate_limit=limits.get("rate_limit"),
                rate_period_seconds=limits.get("rate_period_seconds"),
                paused_at=limits.get("paused_at"),
            )
        )
    return Overview(
        queues=rows,
        workers_alive=int(alive["alive"]),
        failed_last_hour=sum(failed.values()),
        finished_last_hour=sum(sum(m) for m in minutes.values()),
        estimated=any(s.final_counts_estimated for s in stats),
    )


def find_by_key(key: str) -> Op[list[Job]]:
    rows = yield QUERIES["ui_job_find_by_key"], {"key": key}
    return [from_row(r) for r in rows]


TASK_RUNS_CAP = 10_000
"""The tasks page reads at most this many of the latest runs per window."""


@dataclasses.dataclass(frozen=True, slots=True)
class TaskRow:
    task: str
    runs: int
    failed: int
    cancelled: int
    p50: float | None
    p95: float | None
    read: int
    covered_seconds: float | None

    @property
    def failure_rate(self) -> float:
        return self.failed / self.runs if self.runs else 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class TaskStats:
    hour: list[TaskRow]
    day: list[TaskRow]
    errors: list[dict[str, Any]]


def task_stats(cap: int = TASK_RUNS_CAP) -> Op[TaskStats]:
    hour = yield QUERIES["ui_task_stats"], {"window": dt.timedelta(hours=1), "cap": cap}
    day = yield QUERIES["ui_task_stats"], {"window": dt.timedelta(days=1), "cap": cap}
    errors = yield QUERIES["ui_task_top_errors"], {"window": dt.timedelta(days=1), "cap": cap}
    return TaskStats([TaskRow(**r) for r in hour], [TaskRow(**r) for r in day], errors)


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerRow:
    info: WorkerInfo
    running: int
    job_ids: list[int]


def workers() -> Op[list[WorkerRow]]:
    infos = yield from worker_rows.list_workers()
    running = {r["worker_id"]: r for r in (yield QUERIES["ui_running_by_worker"], {})}
    return [
        WorkerRow(w, running.get(w.id, {}).get("running", 0), running.get(w.id, {}).get("job_ids", [])) for w in infos
    ]


def schedules() -> Op[list[ScheduleState]]:
    return (yield from schedule_rows.list_schedules())


def count_matching(states: tuple[str, ...], queue: str | None, task: str | None) -> Op[int]:
    (row,) = yield QUERIES["ui_jobs_matching_count"], {"states": list(states), "queue": queue, "task": task}
    return int(row["jobs"])


def retry_matching(queue: str | None, task: str | None) -> Op[int]:
    (row,) = yield QUERIES["ui_jobs_retry_matching"], {"queue": queue, "task": task}
    return int(row["jobs"])


def cancel_waiting_matching(queue: str | None, task: str | None) -> Op[int]:
    (row,) = yield QUERIES["ui_jobs_cancel_waiting_matching"], {"queue": queue, "task": task}
    return int(row["jobs"])


def workflow_edges(workflow_id: int) -> Op[dict[int, list[int]]]:
    """Each step's parents (job ids, in the order given), for the workflow page."""
    edges: dict[int, list[int]] = {}
    for row in (yield QUERIES["ui_workflow_edges"], {"id": workflow_id}):
        edges.setdefault(row["job_id"], []).append(row["parent_id"])
    return edges


@dataclasses.dataclass(frozen=True, slots=True)
class ParentRow:
    """A parent of a job, on its page."""

    id: int
    step: str | None
    task: str
    state: JobState


def job_parents(job_id: int, limit: int) -> Op[list[ParentRow]]:
    """A job's first ``limit`` parents, in the order given."""
    rows = yield QUERIES["ui_job_parents"], {"id": job_id, "limit": limit}
    return [ParentRow(row["id"], row["step"], row["task"], JobState(row["state"])) for row in rows]
