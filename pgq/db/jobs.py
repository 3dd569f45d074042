"""Statements on pgq.jobs used by the worker and the leader's services."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from psycopg.rows import dict_row

from pgq._queries import QUERIES
from pgq.db import Conn
from pgq.job import Job, from_row


@dataclasses.dataclass(frozen=True, slots=True)
class OutcomeRow:
    """One attempt's end, as ``job_record_outcomes`` takes it."""

    id: int
    attempt: int
    kind: str
    """'succeeded', 'failed' or 'cancelled'."""
    result: str | None = None
    """JSON text of the result (succeeded)."""
    error: str | None = None
    """JSON text of the error entry (failed, cancelled)."""
    retry_in: float | None = None
    """Seconds until the next attempt (failed); None: no more attempts."""
    percent: float | None = None
    """The task's latest progress report, when it is not in the row yet."""
    message: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Moved:
    """A job some statement moved, and the state it moved it to."""

    id: int
    state: str


@dataclasses.dataclass(frozen=True, slots=True)
class Rescued:
    id: int
    state: str
    lost_worker: str


async def claim(conn: Conn, queues: Sequence[str], limit: int, worker_id: str) -> list[Job]:
    """``job_claim``: up to ``limit`` ready jobs, now 'running' on ``worker_id``."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(QUERIES["job_claim"], {"queues": list(queues), "limit": limit, "worker_id": worker_id})
    return [from_row(row) for row in await cur.fetchall()]


async def promote_due(conn: Conn, limit: int) -> list[str]:
    """``job_promote_due``: queue up to ``limit`` due scheduled/retrying jobs; the queues woken."""
    cur = await conn.execute(QUERIES["job_promote_due"], {"limit": limit})
    return [str(row[0]) for row in await cur.fetchall()]


async def next_due_in(conn: Conn, queues: Sequence[str]) -> float | None:
    """``job_next_due_in``: seconds until the next scheduled/retrying job is due (None: none)."""
    cur = await conn.execute(QUERIES["job_next_due_in"], {"queues": list(queues)})
    row = await cur.fetchone()
    return None if row is None or row[0] is None else float(row[0])


async def record_outcomes(conn: Conn, worker_id: str, outcomes: Sequence[OutcomeRow]) -> list[Moved]:
    """``job_record_outcomes``: the guarded batch write; only the accepted ones come back."""
    params = {
        "worker_id": worker_id,
        "ids": [o.id for o in outcomes],
        "attempts": [o.attempt for o in outcomes],
        "kinds": [o.kind for o in outcomes],
        "results": [o.result for o in outcomes],
        "errors": [o.error for o in outcomes],
        "retry_in": [o.retry_in for o in outcomes],
        "percents": [o.percent for o in outcomes],
        "messages": [o.message for o in outcomes],
    }
    cur = await conn.execute(QUERIES["job_record_outcomes"], params)
    return [Moved(int(job_id), str(state)) for job_id, state in await cur.fetchall()]


async def requeue_unfinished(conn: Conn, ids: Sequence[int], worker_id: str) -> list[Moved]:
    """``job_requeue_unfinished``: hand jobs back ('queued', or 'cancelled' when a cancel waited)."""
    cur = await conn.execute(QUERIES["job_requeue_unfinished"], {"ids": list(ids), "worker_id": worker_id})
    return [Moved(int(job_id), str(state)) for job_id, state, _ in await cur.fetchall()]


async def set_progress(
    conn: Conn, job_id: int, attempt: int, worker_id: str, percent: float, message: str | None
) -> None:
    """``job_set_progress``: only the same attempt on the same worker writes it."""
    params = {"id": job_id, "attempt": attempt, "worker_id": worker_id, "percent": percent, "message": message}
    await conn.execute(QUERIES["job_set_progress"], params)


async def rescue_stale(conn: Conn, lease: dt.timedelta, limit: int) -> list[Rescued]:
    """``job_rescue_stale``: up to ``limit`` jobs whose heartbeat is older than ``lease``."""
    cur = await conn.execute(QUERIES["job_rescue_stale"], {"lease": lease, "limit": limit})
    return [Rescued(int(job_id), str(state), str(lost)) for job_id, state, lost, _ in await cur.fetchall()]


async def prune_finished(conn: Conn, state: str, older_than: dt.timedelta, limit: int) -> int:
    """``job_prune_finished``: delete up to ``limit`` jobs in ``state``; how many."""
    cur = await conn.execute(QUERIES["job_prune_finished"], {"state": state, "older_than": older_than, "limit": limit})
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def clear_old_results(conn: Conn, older_than: dt.timedelta, limit: int) -> int:
    """``job_clear_old_results``: drop up to ``limit`` stored results; how many."""
    cur = await conn.execute(QUERIES["job_clear_old_results"], {"older_than": older_than, "limit": limit})
    return cur.rowcount


@dataclasses.dataclass(frozen=True, slots=True)
class VacuumNeed:
    needed: bool
    allowed: bool


async def needs_manual_vacuum(conn: Conn, min_dead: int) -> VacuumNeed:
    """``jobs_needs_manual_vacuum``: autovacuum is off and dead rows pile up; may we vacuum."""
    cur = await conn.execute(QUERIES["jobs_needs_manual_vacuum"], {"min_dead": min_dead})
    row = await cur.fetchone()
    return VacuumNeed(False, False) if row is None else VacuumNeed(bool(row[0]), bool(row[1]))


async def vacuum(conn: Conn) -> None:
    """``jobs_vacuum``."""
    await conn.execute(QUERIES["jobs_vacuum"])
