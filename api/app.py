"""The Starlette app: a thin reader and writer of the same pgq tables, no cache.

``create_app()`` wires the route modules, auth, errors, metrics and the shared job
listener. It can be served by ``pgq api`` or mounted in another Starlette/FastAPI app
under a prefix; a mounted app opens its pool and listener on first use, since the
host app does not run a mounted app's lifespan.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import pgq
from pgq.api import jobs, live, openapi, queues, status, ui, watch, workflows
from pgq.api.auth import Auth
from pgq.api.config import ApiSettings
from pgq.api.errors import EXCEPTION_HANDLERS, catch_unexpected
from pgq.api.events import JobEvents
from pgq.api.metrics import Metrics
from pgq.api.reads import Reads
from pgq.api.subscriptions import DEFAULT_BUFFER

log = logging.getLogger("pgq.api")


def create_app(
    pgq_app: pgq.App | None = None,
    *,
    settings: ApiSettings | None = None,
    event_buffer: int = DEFAULT_BUFFER,
    stall_seconds: float = live.STALL_SECONDS,
) -> Starlette:
    """Build the API around ``pgq_app`` (default: ``pgq.App()`` from the environment).

    ``settings`` defaults to ``ApiSettings.from_env()`` (tokens, body limit).
    ``event_buffer`` is how many changes an event-stream client may have waiting before
    they are dropped for a resync; ``stall_seconds`` how long an event stream or WebSocket
    client may take to accept one message before it is let go.
    """
    queue = pgq_app or pgq.App()
    config = settings or ApiSettings.from_env()
    auth = Auth(config)
    metrics = Metrics()
    reads = Reads(queue, config)
    events = JobEvents(
        lambda: queue.listen_dsn,
        on_change=metrics.on_change,
        allow_pooler=queue.settings.listen_url is not None,
        buffer=event_buffer,
    )
    document = openapi.document()

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(document)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.start()
        try:
            yield
        finally:
            await events.close()
            await reads.close()
            await queue.close()

    app = Starlette(
        routes=[
            *jobs.routes(queue, reads, auth, config.max_body_bytes),
            *workflows.routes(queue, reads, auth, config.max_body_bytes),
            *watch.routes(queue, events, auth, stall_seconds=stall_seconds),
            *live.routes(events, auth, stall_seconds=stall_seconds),
            *status.routes(queue, reads, auth),
            *queues.routes(queue, reads, auth),
            *metrics.routes(reads, auth),
            Route("/openapi.json", openapi_json, methods=["GET"]),
            ui.mount(queue, reads, auth),
        ],
        middleware=[Middleware(metrics.middleware), Middleware(reads.middleware), Middleware(catch_unexpected)],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.job_events = events  # `pgq api` ends long-polls and streams with it at shutdown
    if not auth.enabled:
        log.warning("no API tokens configured (PGQ_API_READ_TOKENS / PGQ_API_WRITE_TOKENS): every request is allowed")
    return app
