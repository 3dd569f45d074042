"""Operator endpoints: health, per-queue statistics, registered workers."""

from __future__ import annotations

import psycopg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import pgq
from api.auth import Auth, Scope
from pgq import _db


def routes(queue: pgq.App, auth: Auth) -> list[Route]:
    async def health(request: Request) -> Response:
        """200 when the database answers at the schema revision this pgq needs; 503 otherwise.

        Open without a token: load balancers and orchestrators probe it.
        """
        try:
            conn = await _db.connect_async(queue.dsn)
        except pgq.DatabaseUnavailableError as exc:
            return JSONResponse({"status": "unavailable", "database": str(exc)}, status_code=503)
        try:
            await _db.check_schema_async(conn)
        except pgq.SchemaNotMigratedError as exc:
            return JSONResponse({"status": "unavailable", "schema": str(exc)}, status_code=503)
        except psycopg.Error as exc:
            return JSONResponse({"status": "unavailable", "database": type(exc).__name__}, status_code=503)
        finally:
            await conn.close()
        return JSONResponse({"status": "ok", "schema_revision": _db.SCHEMA_HEAD})

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
