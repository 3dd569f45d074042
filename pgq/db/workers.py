"""Statements on pgq.workers (a worker's own row, and the leader's clean-up)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from pgq._queries import QUERIES
from pgq.db import Conn
from pgq.db.driver import Op
from pgq.monitoring import WorkerInfo


@dataclasses.dataclass(frozen=True, slots=True)
class Owned:
    """A job the heartbeat refreshed: still running on this worker."""

    id: int
    cancel_requested: bool


async def heartbeat(
    conn: Conn,
    *,
    worker_id: str,
    host: str,
    pid: int,
    queues: Sequence[str],
    concurrency: int,
    schedules: Sequence[str],
    job_ids: Sequence[int],
) -> list[Owned]:
    """``worker_heartbeat``: (re)register the worker, refresh its jobs, report cancel requests."""
    params = {
        "worker_id": worker_id,
        "host": host,
        "pid": pid,
        "queues": list(queues),
        "concurrency": concurrency,
        "schedules": list(schedules),
        "ids": list(job_ids),
    }
    cur = await conn.execute(QUERIES["worker_heartbeat"], params)
    return [Owned(int(job_id), bool(cancel)) for job_id, cancel in await cur.fetchall()]


async def deregister(conn: Conn, worker_id: str) -> None:
    """``worker_deregister``: remove the row and give up any lease."""
    await conn.execute(QUERIES["worker_deregister"], {"worker_id": worker_id})


async def prune_dead(conn: Conn, lease: dt.timedelta) -> list[str]:
    """``worker_prune_dead``: remove rows silent for longer than ``lease``; their ids."""
    cur = await conn.execute(QUERIES["worker_prune_dead"], {"lease": lease})
    return [str(row[0]) for row in await cur.fetchall()]


def list_workers() -> Op[list[WorkerInfo]]:
    """``worker_list``: registered workers, oldest first, with seconds since their heartbeat."""
    rows = yield QUERIES["worker_list"], {}
    return [WorkerInfo(**r) for r in rows]
