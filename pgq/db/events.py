"""What the HTTP API's wait and event streams read: the LISTEN statement for job
changes, and a job together with the snapshot that read it (so a change notified
before the read can be told from one that came after)."""

from __future__ import annotations

from typing import LiteralString

from pgq._queries import QUERIES
from pgq.db.driver import Op
from pgq.job import Job, from_row

LISTEN_JOB_EVENTS: LiteralString = QUERIES["job_events_listen"]
"""``job_events_listen``: job changes (JSON payloads) and the listener's own pings."""


def job_with_snapshot(job_id: int) -> Op[tuple[Job, str] | None]:
    """``job_get_with_snapshot``: the job and ``pg_current_snapshot()`` as text; None: no such job."""
    rows = yield QUERIES["job_get_with_snapshot"], {"id": job_id}
    if not rows:
        return None
    return from_row(rows[0]), str(rows[0]["snapshot"])
