"""Operator endpoints: health, per-queue statistics, registered workers."""

from __future__ import annotations

import asyncio
import logging

import psycopg
from psycopg_pool import PoolTimeout
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import pgq
from pgq.api.auth import Auth, Scope
from pgq.db.schema import SCHEMA_HEAD

log = logging.getLogger("pgq.api")


PROBE_TIMEOUT_SECONDS = 5.0


class HealthProbe:
    """One database probe at a time, shared by every request that arrives meanwhile.

    Health is open to anyone, so a burst must cost one pooled query, not a connection
    per request; and its answer must not carry the DSN or the driver's text (logged).
    """

    def __init__(self, queue: pgq.App) -> None:
        self._queue = queue
        self._running: asyncio.Future[tuple[int, dict[str, str]]] | None = None

    async def check(self) -> tuple[int, dict[str, str]]:
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._probe())
        return await asyncio.shield(self._running)

    async def _probe(self) -> tuple[int, dict[str, str]]:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
                await self._queue.check_database()
        except pgq.SchemaNotMigratedError as exc:
            return 503, {"status": "unavailable", "schema": str(exc)}
        except (pgq.DatabaseUnavailableError, psycopg.Error, PoolTimeout, OSError, TimeoutError) as exc:
            log.warning("health: the database is unavailable: %s", exc or type(exc).__name__)
            return 503, {"status": "unavailable", "database": "the database does not answer (see the API's log)"}
        return 200, {"status": "ok", "schema_revision": SCHEMA_HEAD}


def routes(queue: pgq.App, auth: Auth) -> list[Route]:
    probe = HealthProbe(queue)

    async def health(request: Request) -> Response:
        """200 when the database answers at the schema revision this pgq needs; 503 otherwise.

        Open without a token: load balancers and orchestrators probe it.
        """
        status, body = await probe.check()
        return JSONResponse(body, status_code=status)

    @auth.require(Scope.READ)
    async def queues(request: Request) -> Response:
        stats = await queue.queue_stats()
        return JSONResponse(
            {
                "queues": [
                    {
                        "queue": s.queue,
                        "counts": s.counts,
                        "oldest_queued_seconds": s.oldest_queued_seconds,
                        "finished_last_minute": s.finished_last_minute,
                        "final_counts_estimated": s.final_counts_estimated,
                        "paused": s.paused,
                        "paused_at": s.paused_at.isoformat() if s.paused_at else None,
                    }
                    for s in stats
                ]
            }
        )

    @auth.require(Scope.READ)
    async def workers(request: Request) -> Response:
        rows = await queue.list_workers()
        return JSONResponse(
            {
                "workers": [
                    {
                        "id": w.id,
                        "host": w.host,
                        "pid": w.pid,
                        "queues": w.queues,
                        "concurrency": w.concurrency,
                        "started_at": w.started_at.isoformat(),
                        "heartbeat_at": w.heartbeat_at.isoformat(),
                        "seconds_since_heartbeat": w.seconds_since_heartbeat,
                    }
                    for w in rows
                ]
            }
        )

    return [
        Route("/health", health, methods=["GET"]),
        Route("/queues", queues, methods=["GET"]),
        Route("/workers", workers, methods=["GET"]),
    ]
