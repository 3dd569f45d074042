"""Job endpoints: enqueue, read, list (keyset pages), cancel, retry.

Each is a thin call into ``pgq.App``; the library validates again and owns the SQL.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import pgq
from pgq import tracing
from pgq.api.auth import Auth, Scope
from pgq.api.body import MAX_JOB_ID, job_id, library_refused, read_json, read_query, unknown_parents
from pgq.api.reads import Reads
from pgq.api.schemas import EnqueueRequest, ListQuery


def encode_cursor(before_id: int) -> str:
    """The id of the page's last job, as a string: pages are keyed on id, newest first."""
    return str(before_id)


def decode_cursor(cursor: str) -> int:
    """Any cursor the schema allows (1-19 digits) is a page: ids below it (none below 0)."""
    return min(int(cursor), MAX_JOB_ID)


def routes(queue: pgq.App, reads: Reads, auth: Auth, max_body_bytes: int) -> list[Route]:
    async def written(response: Response) -> Response:
        await reads.after_write(response)
        return response

    @auth.require(Scope.WRITE)
    async def enqueue(request: Request) -> Response:
        """201 with a new job; 200 with the existing one for a repeated idempotency key."""
        body = await read_json(request, EnqueueRequest, max_body_bytes)
        spec = pgq.JobSpec(**body.model_dump())
        try:
            # The caller's W3C trace context: the job's span continues the caller's trace.
            with tracing.continuing(request.headers.get("traceparent"), request.headers.get("tracestate")):
                job, created = await queue.enqueue_spec(spec)
        except pgq.UnknownParentError as exc:
            raise unknown_parents(exc) from None
        except (ValueError, TypeError) as exc:  # the library's own checks (JSON args, run_at with delay, ...)
            raise library_refused(exc) from None
        return await written(JSONResponse(job.to_dict(), status_code=201 if created else 200))

    @auth.require(Scope.READ)
    async def get_job(request: Request) -> Response:
        jid = job_id(request)
        return JSONResponse((await reads.read(request, lambda app: app.get_job(jid))).to_dict())

    @auth.require(Scope.READ)
    async def list_jobs(request: Request) -> Response:
        """Newest first. Keyset on id: rows inserted meanwhile never shift a later page."""
        query = read_query(request, ListQuery)
        before_id = decode_cursor(query.cursor) if query.cursor is not None else None
        jobs = await reads.read(
            request,
            lambda app: app.list_jobs(
                queue=query.queue,
                state=query.state,
                task=query.task,
                before_id=before_id,
                limit=query.limit + 1,  # one more says whether a next page exists
            ),
        )
        page = jobs[: query.limit]
        next_cursor = encode_cursor(page[-1].id) if len(jobs) > query.limit else None
        return JSONResponse({"jobs": [j.to_dict() for j in page], "next_cursor": next_cursor})

    @auth.require(Scope.WRITE)
    async def cancel(request: Request) -> Response:
        """Whatever ``app.cancel`` allows; its JobStateError becomes 409."""
        return await written(JSONResponse((await queue.cancel(job_id(request))).to_dict()))

    @auth.require(Scope.WRITE)
    async def retry(request: Request) -> Response:
        return await written(JSONResponse((await queue.retry(job_id(request))).to_dict()))

    async def jobs(request: Request) -> Response:
        # One route for both methods, so a 405 on /jobs lists both in its Allow header.
        return await (enqueue if request.method == "POST" else list_jobs)(request)

    return [
        Route("/jobs", jobs, methods=["GET", "POST"]),
        Route("/jobs/{id}", get_job, methods=["GET"]),
        Route("/jobs/{id}/cancel", cancel, methods=["POST"]),
        Route("/jobs/{id}/retry", retry, methods=["POST"]),
    ]
