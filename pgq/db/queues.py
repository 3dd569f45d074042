"""Statements on pgq.queues (limits, pause) and the per-queue statistics.

Sans-IO operations (``pgq.db.driver``) for the App, the CLI and the HTTP API.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from pgq._queries import QUERIES
from pgq.db.driver import Op, Row
from pgq.job import FINAL_STATES, JobState
from pgq.monitoring import EXACT_FINAL_COUNT_ROWS, QueueStats
from pgq.names import check_queue_name
from pgq.queues import QueueLimits, QueuePause


def set_limits(limits: QueueLimits) -> Op[QueueLimits]:
    """``queue_limits_set``: validate, then upsert the queue's limits."""
    limits = limits.checked()
    rows = yield (
        QUERIES["queue_limits_set"],
        {
            "queue": limits.queue,
            "max_running": limits.max_running,
            "rate_limit": limits.rate_limit,
            "rate_period": limits.rate_period,
        },
    )
    return QueueLimits(**rows[0])


def list_limits() -> Op[list[QueueLimits]]:
    """``queue_limits_list``: every queue with a limit."""
    rows = yield QUERIES["queue_limits_list"], {}
    return [QueueLimits(**r) for r in rows]


def pause(queue: str) -> Op[QueuePause]:
    """``queue_pause``: keeps the first ``paused_at`` of a queue already paused."""
    check_queue_name(queue)
    rows = yield QUERIES["queue_pause"], {"queue": queue}
    return QueuePause(rows[0]["queue"], rows[0]["paused_at"])


def resume(queue: str) -> Op[QueuePause]:
    """``queue_resume``: clears the pause and notifies the queue's workers."""
    check_queue_name(queue)
    yield QUERIES["queue_resume"], {"queue": queue}
    return QueuePause(queue)


def list_paused() -> Op[list[QueuePause]]:
    """``queue_paused_list``: the paused queues, by name."""
    rows = yield QUERIES["queue_paused_list"], {}
    return [QueuePause(r["queue"], r["paused_at"]) for r in rows]


def stats(exact_final_below: int = EXACT_FINAL_COUNT_ROWS) -> Op[list[QueueStats]]:
    """Per-queue statistics without counting the finished rows of a large table;
    a paused queue is listed even when it has no jobs."""
    live = yield QUERIES["queue_live_counts"], {}
    recent = yield QUERIES["queue_finished_recently"], {}
    (size,) = yield QUERIES["queue_table_size_estimate"], {}
    final: list[Row] = []
    estimated = size["rows"] >= max(exact_final_below, 0)  # -1: never analyzed
    if estimated:
        final = yield QUERIES["queue_final_counts_estimate"], {}
        estimated = bool(final)  # never analyzed (no statistics yet): count instead
    if not estimated:
        final = yield QUERIES["queue_final_counts"], {}
    paused = {r["queue"]: r["paused_at"] for r in (yield QUERIES["queue_paused_list"], {})}
    counts: dict[str, dict[str, int]] = {name: QueueStats.empty_counts() for name in paused}
    oldest: dict[str, float | None] = {}
    finished: dict[str, dict[str, int]] = {}
    for row in [*live, *final]:
        counts.setdefault(row["queue"], QueueStats.empty_counts())[row["state"]] = int(row["jobs"])
    for row in live:
        if row["state"] == JobState.QUEUED:
            oldest[row["queue"]] = max(0.0, row["oldest_queued_seconds"])
    for row in recent:
        counts.setdefault(row["queue"], QueueStats.empty_counts())
        finished.setdefault(row["queue"], {s.value: 0 for s in FINAL_STATES})[row["state"]] = int(row["jobs"])
    return [
        QueueStats(
            queue=name,
            counts=counts[name],
            oldest_queued_seconds=oldest.get(name),
            finished_last_minute=finished.get(name, {s.value: 0 for s in FINAL_STATES}),
            final_counts_estimated=estimated,
            paused_at=paused.get(name),
        )
        for name in sorted(counts)
    ]


@dataclasses.dataclass(frozen=True, slots=True)
class StateLine:
    """One line of ``pgq queues``: a queue's jobs in one state (state None: a paused queue without jobs)."""

    queue: str
    state: str | None
    jobs: int
    oldest_queued_age: dt.timedelta | None
    paused: bool


def state_lines() -> Op[list[StateLine]]:
    """``queue_stats_list``: the pgq.queue_stats view, and a line for each empty paused queue."""
    rows = yield QUERIES["queue_stats_list"], {}
    return [StateLine(**r) for r in rows]
