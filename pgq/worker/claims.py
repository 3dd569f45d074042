"""The worker's claim-side statements: take ready jobs, promote due ones, and read a
dependent job's parents as it starts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from pgq.db import jobs, workflows
from pgq.db.workflows import Parent
from pgq.job import Job

PROMOTE_BATCH = 1000

Pool = AsyncConnectionPool[psycopg.AsyncConnection[Any]]


async def claim(pool: Pool, queues: Sequence[str], limit: int, worker_id: str) -> list[Job]:
    """Up to ``limit`` ready jobs, now 'running' on this worker, in the order to start them."""
    async with pool.connection() as conn:
        claimed = await jobs.claim(conn, queues, limit, worker_id)
    return sorted(claimed, key=lambda j: (j.priority, j.run_at, j.id))


async def promote_due(pool: Pool, queues: Sequence[str]) -> tuple[bool, float | None]:
    """Queue the due scheduled and retrying jobs; say whether there were any, and in
    how many seconds the next one is due (None: none), in one round trip."""
    async with pool.connection() as conn, conn.pipeline():
        promoted = await jobs.promote_due(conn, PROMOTE_BATCH)
        due_in = await jobs.next_due_in(conn, queues)
    return bool(promoted), due_in


async def parents_of(pool: Pool, job_id: int) -> list[Parent]:
    """The parents of a dependent job with their results, as its attempt starts."""
    async with pool.connection() as conn:
        return await workflows.parents(conn, job_id)
