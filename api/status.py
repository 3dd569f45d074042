"""Operator endpoints: health, per-queue statistics, registered workers."""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import pgq
from pgq.api.auth import Auth, Scope
from pgq.api.errors import UNREACHABLE
from pgq.api.reads import Reads
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
        except UNREACHABLE as exc:
            log.warning("health: the database is unavailable: %s", exc or type(exc).__name__)
            return 503, {"status": "unavailable", "database": "the database does not answer (see the API's log)"}
        return 200, {"status": "ok", "schema_revision": SCHEMA_HEAD}


def routes(queue: pgq.App, reads: Reads, auth: Auth) -> list[Route]:
    probe = HealthProbe(queue)

    async def health(request: Request) -> Response:
        """200 when the database answers at the schema revision this pgq needs; 503 otherwise.

        Open without a token: load balancers and orchestrators probe it.
        """
        status, body = await probe.check()
        return JSONResponse(body, status_code=status)

    @auth.require(Scope.READ)
    async def queues(request: Request) -> Response:
        stats = await reads.read(request, lambda app: app.queue_stats())
        return JSONResponse({"queues": [s.to_dict() for s in stats]})

    @auth.require(Scope.READ)
    async def workers(request: Request) -> Response:
        rows = await reads.read(request, lambda app: app.list_workers())
        return JSONResponse({"workers": [w.to_dict() for w in rows]})

    return [
        Route("/health", health, methods=["GET"]),
        Route("/queues", queues, methods=["GET"]),
        Route("/workers", workers, methods=["GET"]),
    ]
