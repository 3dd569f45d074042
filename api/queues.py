"""Queue actions: pause and resume (write token).

Answers with the queue's pause state, ``{"queue", "paused", "paused_at"}``. A name
pgq would refuse is a 422 that does not echo the name back (a path can be long).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import pgq
from pgq.api.auth import Auth, Scope
from pgq.api.errors import ApiError
from pgq.api.reads import Reads
from pgq.task import QUEUE_NAME


def pause_body(state: pgq.QueuePause) -> dict[str, object]:
    return {
        "queue": state.queue,
        "paused": state.paused,
        "paused_at": state.paused_at.isoformat() if state.paused_at else None,
    }


def _queue_name(request: Request) -> str:
    name = request.path_params["name"]
    if not isinstance(name, str) or not QUEUE_NAME.fullmatch(name):
        raise ApiError(
            422,
            "invalid queue name: use 1-128 letters, digits, '_', '.', ':' or '-'",
            details={"fields": [{"field": "name", "in": "path"}]},
        )
    return name


def routes(queue: pgq.App, reads: Reads, auth: Auth) -> list[Route]:
    def action(change: Callable[[str], Awaitable[pgq.QueuePause]]) -> Callable[[Request], Awaitable[Response]]:
        @auth.require(Scope.WRITE)
        async def endpoint(request: Request) -> Response:
            response = JSONResponse(pause_body(await change(_queue_name(request))))
            await reads.after_write(response)
            return response

        return endpoint

    return [
        Route("/queues/{name}/pause", action(queue.pause_queue), methods=["POST"]),
        Route("/queues/{name}/resume", action(queue.resume_queue), methods=["POST"]),
    ]
