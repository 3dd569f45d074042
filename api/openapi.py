"""The OpenAPI 3.1 document, built from the same pydantic models that validate requests.

Paths are listed here by hand (one entry per route) and a test checks that every
route of the app appears, and a schemathesis run checks that responses conform.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from pgq.api import schemas, workflow_schemas

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
    schemas.JobChangeOut,
    schemas.ResyncOut,
    schemas.UnavailableOut,
    schemas.StateEventOut,
    schemas.ProgressEventOut,
    workflow_schemas.WorkflowRequest,
    workflow_schemas.WorkflowOut,
    workflow_schemas.WorkflowPage,
]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


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


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or a string, never null: drop the null alternative."""
    options = [s for s in schema.get("anyOf", []) if s != {"type": "null"}]
    if len(options) != 1:
        return schema
    rest = {k: v for k, v in schema.items() if k not in {"anyOf", "default"}}
    return {**rest, **options[0]}


def _query(model: type[BaseModel]) -> list[dict[str, Any]]:
    props = model.model_json_schema(ref_template=_REF)["properties"]
    return [
        {"name": name, "in": "query", "required": False, "schema": _not_null(schema)} for name, schema in props.items()
    ]


def _multi_query(model: type[BaseModel]) -> list[dict[str, Any]]:
    """Query parameters that may repeat (?state=queued&state=running)."""
    return [{**param, "style": "form", "explode": True} for param in _query(model)]


def _event(name: str, model: type[BaseModel]) -> dict[str, Any]:
    """One Server-Sent Event: its name, and its data as JSON of ``model``."""
    return {
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"const": name},
            "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": _ref(model)},
        },
    }


def _event_stream(description: str, *events: dict[str, Any]) -> dict[str, Any]:
    """A text/event-stream response; as OpenAPI 3.1 reads it, the schema describes each event
    (comments such as ': ping' are not events)."""
    return {"description": description, "content": {"text/event-stream": {"schema": {"oneOf": list(events)}}}}


def _op(summary: str, responses: dict[str, Any], *, write: bool = False, **extra: Any) -> dict[str, Any]:
    errors = _WRITE_ERRORS if write else _READ_ERRORS
    return {"summary": summary, "responses": {**responses, **errors}, "security": [{"bearer": []}], **extra}


def document() -> dict[str, Any]:
    from pgq.api import openapi_workflows  # its paths are built with this module's helpers

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
                "Server-Sent Events of the job's changes, in the order they happened, until it is final",
                {
                    "200": _event_stream(
                        "'state' {id, state, attempt} and 'progress' {id, progress} as they happen, then 'end' "
                        "with the final job (nothing else follows the final state); ': ping' every 15 s. "
                        "'unavailable' {message} ends it early when the API's database listener is lost.",
                        _event("state", schemas.StateEventOut),
                        _event("progress", schemas.ProgressEventOut),
                        _event("end", schemas.JobOut),
                        _event("unavailable", schemas.UnavailableOut),
                    ),
                    "404": not_found,
                },
                parameters=[_ID],
            )
        },
        "/events": {
            "get": _op(
                "Server-Sent Events of every job change a filter matches (enqueued, state, progress)",
                {
                    "200": _event_stream(
                        "'job' for each change; 'resync' {reason} when changes were dropped or missed (read the "
                        "jobs again); ': ping' every 15 s. Every change after the response headers is sent. "
                        "'unavailable' {message} ends it when the API's database listener is lost.",
                        _event("job", schemas.JobChangeOut),
                        _event("resync", schemas.ResyncOut),
                        _event("unavailable", schemas.UnavailableOut),
                    ),
                },
                parameters=_multi_query(schemas.EventsQuery),
            )
        },
        "/ws": {
            "get": _op(
                "The changes of GET /events over a WebSocket: JSON text messages {type: 'job', ...} and "
                "{type: 'resync', reason}. A refused handshake is accepted and closed with 4401, 4403 or 4422; "
                "a client too slow to take messages is closed with 1008, shutdown closes with 1001, and a lost "
                "database listener with 1013.",
                {
                    "101": {"description": "Switching to the WebSocket protocol."},
                    "426": _error("Not a WebSocket handshake: connect with 'Upgrade: websocket'."),
                },
                parameters=_multi_query(schemas.EventsQuery),
            )
        },
        **openapi_workflows.paths(),
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
            "description": "The jobs in pgq.jobs and the workflows in pgq.workflows, read and written.",
        },
        "paths": paths,
        "components": {
            "schemas": {**defs.get("$defs", {}), "JsonValue": schemas.JSON_VALUE_SCHEMA},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
