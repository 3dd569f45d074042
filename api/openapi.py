"""The OpenAPI 3.1 document, built from the same pydantic models that validate requests.

Paths are listed here by hand (one entry per route) and a test checks that every
route of the app appears, and a schemathesis run checks that responses conform.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api import schemas

_REF = "#/components/schemas/{model}"

_MODELS: list[type[BaseModel]] = [
    schemas.EnqueueRequest,
    schemas.JobOut,
    schemas.JobPage,
    schemas.QueueList,
    schemas.QueuePauseOut,
    schemas.WorkerList,
    schemas.Health,
    schemas.ErrorOut,
]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _body(model: type[BaseModel]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(model)}}}


def _error(description: str) -> dict[str, Any]:
    return _json(schemas.ErrorOut, description)


_READ_ERRORS = {"401": _error("Missing or invalid bearer token."), "422": _error("Invalid query parameters.")}
_WRITE_ERRORS = {**_READ_ERRORS, "403": _error("The token may only read.")}
_ANY_OBJECT = {"type": "object"}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}
_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$"},
}


def _query(model: type[BaseModel]) -> list[dict[str, Any]]:
    props = model.model_json_schema(ref_template=_REF)["properties"]
    return [{"name": name, "in": "query", "required": False, "schema": schema} for name, schema in props.items()]


def _op(summary: str, responses: dict[str, Any], *, write: bool = False, **extra: Any) -> dict[str, Any]:
    errors = _WRITE_ERRORS if write else _READ_ERRORS
    return {"summary": summary, "responses": {**responses, **errors}, "security": [{"bearer": []}], **extra}


def document() -> dict[str, Any]:
    _, defs = models_json_schema([(m, "validation") for m in _MODELS], ref_template=_REF)
    job = _json(schemas.JobOut, "The job.")
    not_found = _error("No job with this id.")
    conflict = _error("The job's state does not allow this; details.state says which it is.")
    paths: dict[str, Any] = {
        "/jobs": {
            "post": _op(
                "Enqueue a job by task name",
                {
                    "201": _json(schemas.JobOut, "The new job."),
                    "200": _json(schemas.JobOut, "An idempotent repeat: the existing job with this key."),
                    "400": _error("The body is not valid JSON."),
                    "413": _error("The body is larger than the limit."),
                    "415": _error("The body is not JSON."),
                },
                write=True,
                requestBody={
                    "required": True,
                    "content": {"application/json": {"schema": _ref(schemas.EnqueueRequest)}},
                },
            ),
            "get": _op(
                "List jobs, newest first (keyset pagination)",
                {"200": _json(schemas.JobPage, "One page of jobs.")},
                parameters=_query(schemas.ListQuery),
            ),
        },
        "/jobs/{id}": {"get": _op("One job", {"200": job, "404": not_found}, parameters=[_ID])},
        "/jobs/{id}/cancel": {
            "post": _op("Cancel a job", {"200": job, "404": not_found, "409": conflict}, write=True, parameters=[_ID])
        },
        "/jobs/{id}/retry": {
            "post": _op(
                "Put a failed or cancelled job back in its queue",
                {"200": job, "404": not_found, "409": conflict},
                write=True,
                parameters=[_ID],
            )
        },
        "/jobs/{id}/wait": {
            "get": _op(
                "Wait until the job is final (long-poll), or until the timeout",
                {"200": _json(schemas.JobOut, "The job: final, or as it is at the timeout."), "404": not_found},
                parameters=[_ID, *_query(schemas.WaitQuery)],
            )
        },
        "/jobs/{id}/events": {
            "get": _op(
                "Server-Sent Events of the job's changes until it is final",
                {
                    "200": {
                        "description": "Events 'state' {id, state, attempt}, 'progress' {id, progress}, "
                        "then 'end' with the final job; ': ping' comments keep the stream open.",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "404": not_found,
                },
                parameters=[_ID],
            )
        },
        "/queues": {
            "get": _op("Per-queue statistics", {"200": _json(schemas.QueueList, "Every queue with jobs or paused.")})
        },
        "/queues/{name}/pause": {
            "post": _op(
                "Pause a queue: workers claim nothing from it until it is resumed; running jobs finish",
                {"200": _json(schemas.QueuePauseOut, "The queue, paused.")},
                write=True,
                parameters=[_NAME],
            )
        },
        "/queues/{name}/resume": {
            "post": _op(
                "Resume a queue and wake its workers",
                {"200": _json(schemas.QueuePauseOut, "The queue, not paused.")},
                write=True,
                parameters=[_NAME],
            )
        },
        "/workers": {"get": _op("Registered workers", {"200": _json(schemas.WorkerList, "Rows of pgq.workers.")})},
        "/metrics": {
            "get": _op(
                "Prometheus metrics",
                {
                    "200": {
                        "description": "Prometheus text exposition format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            )
        },
        "/health": {
            "get": {
                "summary": "Database reachable and migrated (no token needed)",
                "security": [],
                "responses": {
                    "200": _json(schemas.Health, "Healthy."),
                    "503": _json(schemas.Health, "The database is unreachable or not migrated."),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document (no token needed)",
                "security": [],
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pgq",
            "version": "1",
            "description": "The jobs in pgq.jobs, read and written.",
        },
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
