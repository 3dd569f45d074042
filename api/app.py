"""The Starlette app: a thin reader and writer of the same pgq tables, no cache.

So far it serves the health check; the job endpoints build on the same App.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import psycopg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import pgq
from pgq import _db


def create_app(pgq_app: pgq.App | None = None) -> Starlette:
    """Build the API around ``pgq_app`` (default: ``pgq.App()`` from the environment)."""
    queue = pgq_app or pgq.App()

    async def health(request: Request) -> JSONResponse:
        """200 when the database answers and its schema is the one this pgq needs."""
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

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await queue.close()

    return Starlette(routes=[Route("/health", health, methods=["GET"])], lifespan=lifespan)
