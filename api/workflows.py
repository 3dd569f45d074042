"""Workflow endpoints: enqueue a graph of steps, list, read, cancel and retry.

Like api/jobs.py, each is a thin call into ``pgq.App`` (the workflow methods of
pgq/workflow.py); ``pgq.canvas.plan_description`` validates the graph (unknown step
names, duplicates, cycles) and its refusal is a 422 naming the problem, with nothing
written.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import pgq
from pgq.api.auth import Auth, Scope
from pgq.api.body import job_id, read_json, read_query, unknown_parents
from pgq.api.errors import ApiError
from pgq.api.jobs import decode_cursor, encode_cursor
from pgq.api.reads import Reads
from pgq.api.workflow_schemas import WorkflowRequest, WorkflowsQuery


def refused(exc: ValueError | TypeError) -> ApiError:
    """422 for a graph or a step the library refused, its message naming the problem."""
    fields = [{"field": "steps", "message": str(exc), "type": "value_error"}]
    return ApiError(422, f"invalid body: steps: {exc}", details={"fields": fields})


def workflow_id(request: Request) -> int:
    return job_id(request, "workflow")


def routes(queue: pgq.App, reads: Reads, auth: Auth, max_body_bytes: int) -> list[Route]:
    async def written(response: Response) -> Response:
        await reads.after_write(response)
        return response

    @auth.require(Scope.WRITE)
    async def enqueue(request: Request) -> Response:
        """201 with the new workflow: every step and edge written in one transaction."""
        body = await read_json(request, WorkflowRequest, max_body_bytes)
        steps = [step.model_dump(exclude_none=True) for step in body.steps]
        try:
            workflow = await queue.enqueue_workflow(steps, name=body.name)
        except pgq.UnknownParentError as exc:
            raise unknown_parents(exc) from None
        except (ValueError, TypeError) as exc:
            raise refused(exc) from None
        return await written(JSONResponse(workflow.to_dict(), status_code=201))

    @auth.require(Scope.READ)
    async def list_workflows(request: Request) -> Response:
        """Newest first, keyset on id, without their steps."""
        query = read_query(request, WorkflowsQuery)
        before_id = decode_cursor(query.cursor) if query.cursor is not None else None
        rows = await reads.read(request, lambda app: app.list_workflows(limit=query.limit + 1, before_id=before_id))
        page = rows[: query.limit]
        next_cursor = encode_cursor(page[-1].id) if len(rows) > query.limit else None
        return JSONResponse({"workflows": [w.to_dict() for w in page], "next_cursor": next_cursor})

    @auth.require(Scope.READ)
    async def get_workflow(request: Request) -> Response:
        wid = workflow_id(request)
        return JSONResponse((await reads.read(request, lambda app: app.get_workflow(wid))).to_dict())

    @auth.require(Scope.WRITE)
    async def cancel(request: Request) -> Response:
        """Steps not started are cancelled, running ones asked to stop; finished ones stay."""
        return await written(JSONResponse((await queue.cancel_workflow(workflow_id(request))).to_dict()))

    @auth.require(Scope.WRITE)
    async def retry(request: Request) -> Response:
        """Failed and cancelled steps run again; the steps after them wait for them."""
        return await written(JSONResponse((await queue.retry_workflow(workflow_id(request))).to_dict()))

    async def workflows(request: Request) -> Response:
        return await (enqueue if request.method == "POST" else list_workflows)(request)

    return [
        Route("/workflows", workflows, methods=["GET", "POST"]),
        Route("/workflows/{id}", get_workflow, methods=["GET"]),
        Route("/workflows/{id}/cancel", cancel, methods=["POST"]),
        Route("/workflows/{id}/retry", retry, methods=["POST"]),
    ]
