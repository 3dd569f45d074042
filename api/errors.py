"""Every error leaves the API as ``{"error": {"code", "message", "details"}}``.

Handlers turn Starlette's routing errors (404, 405) and pgq's typed errors, and
``catch_unexpected`` anything else, into that one shape, so clients have one thing to parse.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import psycopg
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import pgq
from pgq.errors import first_line

log = logging.getLogger("pgq.api")

UNREACHABLE: tuple[type[BaseException], ...] = (pgq.DatabaseUnavailableError, psycopg.Error, OSError, TimeoutError)
"""What a call raises when its database cannot be reached (a lost connection, a connect or
pool wait that timed out: PoolTimeout is an OperationalError), as opposed to a bug."""

_CODES = {
    400: "malformed_json",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid_fields",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An error response with a status, a machine-readable code and details."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _CODES.get(status, "error")
        self.message = message
        self.details = dict(details or {})
        self.headers = dict(headers or {})


def error_response(error: ApiError) -> JSONResponse:
    body = {"error": {"code": error.code, "message": error.message, "details": error.details}}
    return JSONResponse(body, status_code=error.status, headers=error.headers)


async def on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def on_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 (no such route) and 405 (wrong method), as JSON."""
    assert isinstance(exc, HTTPException)
    message = "no such endpoint" if exc.status_code == 404 else str(exc.detail)
    return error_response(ApiError(exc.status_code, message, headers=exc.headers))


async def on_not_found(request: Request, exc: Exception) -> Response:
    """No job, or no workflow, with this id."""
    return error_response(ApiError(404, str(exc)))


async def on_job_state(request: Request, exc: Exception) -> Response:
    """A state that does not allow the change: 409, with the state that refused it."""
    assert isinstance(exc, pgq.JobStateError)
    return error_response(ApiError(409, str(exc), code="state_conflict", details={"state": exc.state}))


async def on_database_unavailable(request: Request, exc: Exception) -> Response:
    return error_response(ApiError(503, str(exc)))


async def on_connection_error(request: Request, exc: Exception) -> Response:
    """A connection lost mid-query, a connect that timed out, no pooled connection within
    POOL_TIMEOUT (PoolTimeout): the database is unreachable, not a bug. 503, logged briefly."""
    first = first_line(exc)
    log.warning("%s %s: the database is unavailable: %s", request.method, request.url.path, first)
    return error_response(ApiError(503, f"the database is unavailable: {first}"))


def catch_unexpected(app: ASGIApp) -> ASGIApp:
    """A bug: logged once with its traceback, answered 500 without internals.

    Not an exception handler: Starlette re-raises after calling a handler for
    ``Exception`` (so the server logs it a second time); this middleware ends it here.
    """

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await app(scope, receive, tracking)
        except Exception as exc:
            log.error("unhandled error on %s %s", scope.get("method"), scope.get("path"), exc_info=exc)
            if scope["type"] == "http" and not started:
                await error_response(ApiError(500, "internal server error"))(scope, receive, send)

    return guarded


EXCEPTION_HANDLERS = {
    ApiError: on_api_error,
    HTTPException: on_http_exception,
    pgq.JobNotFoundError: on_not_found,
    pgq.WorkflowNotFoundError: on_not_found,
    pgq.JobStateError: on_job_state,
    pgq.DatabaseUnavailableError: on_database_unavailable,
    pgq.SchemaNotMigratedError: on_database_unavailable,
    psycopg.OperationalError: on_connection_error,
}
