"""Pausing a queue: the claim gives nothing from a paused queue until it is resumed.

The pause lives in ``pgq.queues.paused_at``, which the claim function already reads
for the queue's limits, so an app with no paused queue pays nothing for the feature.
Running jobs (and jobs a worker already claimed ahead) finish; resuming notifies the
queue's workers, so they claim at once instead of at their next poll.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from pgq._queries import QUERIES
from pgq.db.driver import Op
from pgq.task import check_queue_name


@dataclasses.dataclass(frozen=True, slots=True)
class QueuePause:
    """Whether a queue is paused, and since when (a row of pgq.queues)."""

    queue: str
    paused_at: dt.datetime | None = None
    """When the queue was paused; None when it is not paused."""

    @property
    def paused(self) -> bool:
        return self.paused_at is not None


def pause_queue(queue: str) -> Op[QueuePause]:
    check_queue_name(queue)
    rows = yield QUERIES["queue_pause"], {"queue": queue}
    return QueuePause(rows[0]["queue"], rows[0]["paused_at"])


def resume_queue(queue: str) -> Op[QueuePause]:
    check_queue_name(queue)
    yield QUERIES["queue_resume"], {"queue": queue}
    return QueuePause(queue)


def list_paused_queues() -> Op[list[QueuePause]]:
    rows = yield QUERIES["queue_paused_list"], {}
    return [QueuePause(r["queue"], r["paused_at"]) for r in rows]
