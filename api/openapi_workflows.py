"""The workflow operations of the OpenAPI document (api/openapi.py merges them in)."""

from __future__ import annotations

from typing import Any

from pgq.api import workflow_schemas as ws
from pgq.api.openapi import _ID, _error, _json, _op, _query, _ref  # private: openapi.py's helpers, split for size


def paths() -> dict[str, Any]:
    workflow = _json(ws.WorkflowOut, "The workflow with its steps.")
    not_found = _error("No workflow with this id.")
    return {
        "/workflows": {
            "post": _op(
                "Enqueue a workflow: steps and the edges between them (after), in one transaction",
                {
                    "201": _json(ws.WorkflowOut, "The new workflow with its steps."),
                    "400": _error("The body is not valid JSON."),
                    "413": _error("The body is larger than the limit."),
                    "415": _error("The body is not JSON."),
                },
                write=True,
                requestBody={"required": True, "content": {"application/json": {"schema": _ref(ws.WorkflowRequest)}}},
            ),
            "get": _op(
                "List workflows with their counts, newest first (keyset pagination)",
                {"200": _json(ws.WorkflowPage, "One page of workflows.")},
                parameters=_query(ws.WorkflowsQuery),
            ),
        },
        "/workflows/{id}": {
            "get": _op("One workflow with its steps", {"200": workflow, "404": not_found}, parameters=[_ID])
        },
        "/workflows/{id}/cancel": {
            "post": _op(
                "Cancel a workflow: steps not started are cancelled, running ones asked to stop",
                {"200": workflow, "404": not_found},
                write=True,
                parameters=[_ID],
            )
        },
        "/workflows/{id}/retry": {
            "post": _op(
                "Run a workflow's failed and cancelled steps again (the steps after them wait for them)",
                {"200": workflow, "404": not_found},
                write=True,
                parameters=[_ID],
            )
        },
    }
