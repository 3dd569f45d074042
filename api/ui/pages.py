"""The dashboard's pages (GET): overview, jobs, job, tasks, workers, schedules.

Each page is a route, a template and named queries (pgq/db/dashboard.py). With
``?fragment=1`` a page answers with only its live part, which the page's script
fetches again when the event stream says something changed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response

import pgq
from pgq.api.auth import Scope
from pgq.api.ui.render import NotAllowed, Ui
from pgq.db import dashboard as data

Handler = Callable[[Request], Awaitable[Response]]
PAGE_SIZE = 50
MAX_PARENTS_SHOWN = 100
"""A job page lists at most this many of its parents (a join can have thousands)."""
_MAX_FILTER = 255
_STATES = [s.value for s in pgq.JobState]
_DONE = {
    "cancelled": "Cancelled.",
    "cancel_requested": "Cancel requested: the worker running it stops it.",
    "retried": "Queued again.",
    "bulk_retried": "Failed jobs matching the filter are queued again: {n}.",
    "bulk_cancelled": "Waiting jobs matching the filter are cancelled: {n}.",
    "paused": "Paused: workers claim nothing from this queue until it is resumed.",
    "resumed": "Resumed.",
    "workflow_cancelled": "Steps not started are cancelled; running ones are asked to stop.",
    "workflow_retried": "Failed and cancelled steps run again; the steps after them wait for them.",
}


def done_message(request: Request) -> str | None:
    """The result of the last action, from a fixed list (no text is reflected)."""
    template = _DONE.get(request.query_params.get("done", ""))
    if template is None:
        return None
    count = request.query_params.get("n", "")
    return template.format(n=count if count.isdigit() else "?")


def guarded(ui: Ui, scope: Scope) -> Callable[[Handler], Handler]:
    """Login redirect, 403 page, and a 503 page when the database is away."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def run(request: Request) -> Response:
            try:
                ui.allowed(request, scope)
                return await handler(request)
            except NotAllowed as refused:
                if refused.scope is Scope.WRITE and ui.auth.enabled and ui.allowed_any(request):
                    return ui.message(
                        request, 403, "Read-only", "This token may only read; actions need a write token."
                    )
                if request.method == "GET" and "fragment" not in request.query_params:
                    return ui.redirect(request, "ui:login", {"next": request.url.path})
                return ui.message(request, 401, "Sign in", "Sign in with a token first.")
            except (pgq.DatabaseUnavailableError, pgq.SchemaNotMigratedError) as exc:
                return ui.message(request, 503, "Database unavailable", str(exc))

        return run

    return decorate


def _filter(request: Request, name: str) -> str | None:
    value = request.query_params.get(name, "").strip()
    if len(value) > _MAX_FILTER:
        raise ValueError(f"{name} is longer than {_MAX_FILTER} characters")
    return value or None


def routes(ui: Ui) -> dict[str, Handler]:
    queue = ui.queue
    read = ui.reads.read

    def view(request: Request, page: str, fragment: str, context: Mapping[str, object]) -> Response:
        name = fragment if request.query_params.get("fragment") == "1" else page
        return ui.render(request, name, {"done": done_message(request), **context})

    @guarded(ui, Scope.READ)
    async def overview(request: Request) -> Response:
        lease = dt.timedelta(seconds=queue.settings.rescue_after)
        return view(
            request,
            "overview.html",
            "_queues.html",
            {"data": await read(request, lambda app: app.run(data.overview(lease)))},
        )

    @guarded(ui, Scope.READ)
    async def jobs(request: Request) -> Response:
        try:
            filters = {name: _filter(request, name) for name in ("queue", "state", "task", "q")}
            if filters["state"] is not None and filters["state"] not in _STATES:
                raise ValueError(f"unknown state {filters['state']!r}; states are: {', '.join(_STATES)}")
            raw_before = request.query_params.get("before", "")
            before = int(raw_before) if raw_before else None
            if before is not None and not 0 < before < 2**63:
                raise ValueError("before must be a positive job id")
        except ValueError as exc:
            return ui.message(request, 400, "Bad filter", str(exc))
        search = filters.pop("q")
        found: list[pgq.Job] | None = None
        if search is not None:
            found = await read(request, lambda app: app.run(data.find_by_key(search)))
            if search.isdigit() and int(search) < 2**63:
                with contextlib.suppress(pgq.JobNotFoundError):
                    found.insert(0, await read(request, lambda app: app.get_job(int(search))))
            rows, next_before = found, None
        else:
            page = await read(request, lambda app: app.list_jobs(**filters, before_id=before, limit=PAGE_SIZE + 1))
            rows = page[:PAGE_SIZE]
            next_before = rows[-1].id if len(page) > PAGE_SIZE else None
        context = {
            "jobs": rows,
            "filters": filters,
            "search": search,
            "before": before,
            "next_before": next_before,
            "states": _STATES,
            "now": dt.datetime.now(dt.UTC),
        }
        return view(request, "jobs.html", "_jobs.html", context)

    @guarded(ui, Scope.READ)
    async def job(request: Request) -> Response:
        job_id: int = request.path_params["id"]
        try:
            found = await read(request, lambda app: app.get_job(job_id)) if job_id < 2**63 else None
        except pgq.JobNotFoundError:
            found = None
        if found is None:
            return ui.message(request, 404, "No such job", f"There is no job {job_id}.")
        parents: list[data.ParentRow] = []
        if found.has_parents:  # it waits (or waited) for other jobs
            parents = await read(request, lambda app: app.run(data.job_parents(job_id, MAX_PARENTS_SHOWN)))
        context = {
            "job": found,
            "parents": parents,
            "parents_left": sum(not parent.state.is_final for parent in parents),
            "max_parents": MAX_PARENTS_SHOWN,
            "now": dt.datetime.now(dt.UTC),
        }
        return view(request, "job.html", "_job.html", context)

    @guarded(ui, Scope.READ)
    async def tasks(request: Request) -> Response:
        stats = await read(request, lambda app: app.run(data.task_stats()))
        return view(request, "tasks.html", "tasks.html", {"stats": stats, "cap": data.TASK_RUNS_CAP})

    @guarded(ui, Scope.READ)
    async def workers(request: Request) -> Response:
        rows = await read(request, lambda app: app.run(data.workers()))
        return view(request, "workers.html", "workers.html", {"workers": rows})

    @guarded(ui, Scope.READ)
    async def schedules(request: Request) -> Response:
        rows = await read(request, lambda app: app.run(data.schedules()))
        return view(request, "schedules.html", "schedules.html", {"schedules": rows, "now": dt.datetime.now(dt.UTC)})

    return {
        "overview": overview,
        "jobs": jobs,
        "job": job,
        "tasks": tasks,
        "workers": workers,
        "schedules": schedules,
    }
