"""The worker's two claim-side statements: take ready jobs, and promote due ones."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from pgq._queries import QUERIES
from pgq.job import Job

PROMOTE_BATCH = 1000

Pool = AsyncConnectionPool[psycopg.AsyncConnection[Any]]


async def claim(pool: Pool, queues: Sequence[str], limit: int, worker_id: str) -> list[Job]:
    """Up to ``limit`` ready jobs, now 'running' on this worker, in the order to start them."""
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(QUERIES["job_claim"], {"queues": list(queues), "limit": limit, "worker_id": worker_id})
        rows = await cur.fetchall()
    return sorted((Job(**r) for r in rows), key=lambda j: (j.priority, j.run_at, j.id))


async def promote_due(pool: Pool, queues: Sequence[str]) -> tuple[bool, float | None]:
    """Queue the due scheduled and retrying jobs; say whether there were any, and in
    how many seconds the next one is due (None: none), in one round trip."""
    async with pool.connection() as conn, conn.pipeline():
        promote = await conn.execute(QUERIES["job_promote_due"], {"limit": PROMOTE_BATCH})
        due = await conn.execute(QUERIES["job_next_due_in"], {"queues": list(queues)})
        promoted, due_row = await promote.fetchall(), await due.fetchone()
    return bool(promoted), (due_row[0] if due_row else None)
