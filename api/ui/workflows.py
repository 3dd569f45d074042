"""The dashboard's workflow pages: the list, one workflow with its steps and their
parents, and its cancel and retry (a confirmation page, then a CSRF-checked POST).

Reads go through ``ui.reads`` like every page (the replica when it keeps up); the
actions call the App's workflow methods, as ``POST /workflows/{id}/cancel`` does.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import Response

import pgq
from pgq.api.auth import Scope
from pgq.api.ui import session
from pgq.api.ui.pages import Handler, done_message, guarded
from pgq.api.ui.render import Ui
from pgq.db import dashboard as data

PAGE_SIZE = 50
MAX_STEPS_SHOWN = 1000
"""A workflow page lists at most this many steps (the counts cover all of them)."""

_ACTIONS = {
    "cancel": ("Cancel workflow", "workflow_cancelled"),
    "retry": ("Retry workflow", "workflow_retried"),
}


def routes(ui: Ui) -> dict[str, Handler]:
    read = ui.reads.read

    def view(request: Request, page: str, fragment: str, context: Mapping[str, object]) -> Response:
        name = fragment if request.query_params.get("fragment") == "1" else page
        return ui.render(request, name, {"done": done_message(request), **context})

    async def find(request: Request) -> pgq.Workflow | None:
        workflow_id: int = request.path_params["id"]
        if not 0 < workflow_id < 2**63:
            return None
        try:
            return await read(request, lambda app: app.get_workflow(workflow_id))
        except pgq.WorkflowNotFoundError:
            return None

    def missing(request: Request) -> Response:
        return ui.message(request, 404, "No such workflow", f"There is no workflow {request.path_params['id']}.")

    @guarded(ui, Scope.READ)
    async def workflows(request: Request) -> Response:
        raw = request.query_params.get("before", "")
        if raw and not (raw.isascii() and raw.isdigit() and len(raw) <= 19 and 0 < int(raw) < 2**63):
            return ui.message(request, 400, "Bad filter", "before must be a positive workflow id")
        before = int(raw) if raw else None
        rows = await read(request, lambda app: app.list_workflows(limit=PAGE_SIZE + 1, before_id=before))
        page = rows[:PAGE_SIZE]
        next_before = page[-1].id if len(rows) > PAGE_SIZE else None
        context = {"workflows": page, "before": before, "next_before": next_before}
        return view(request, "workflows.html", "_workflows.html", context)

    @guarded(ui, Scope.READ)
    async def workflow(request: Request) -> Response:
        found = await find(request)
        if found is None:
            return missing(request)
        edges = await read(request, lambda app: app.run(data.workflow_edges(found.id)))
        steps = found.steps[:MAX_STEPS_SHOWN]
        names = {job.id: job.step or str(job.id) for job in found.steps}
        context = {"workflow": found, "steps": steps, "edges": edges, "names": names}
        return view(request, "workflow.html", "_workflow.html", context)

    @guarded(ui, Scope.WRITE)
    async def confirm(request: Request) -> Response:
        """What the action would change, counted now; the POST form does it."""
        action = request.url.path.rsplit("/", 1)[-1]
        found = await find(request)
        if found is None:
            return missing(request)
        s = found.status
        count = s.waiting + s.queued if action == "cancel" else s.failed + s.cancelled
        context = {"action": action, "title": _ACTIONS[action][0], "workflow": found, "count": count}
        return ui.render(request, "workflow_confirm.html", context)

    @guarded(ui, Scope.WRITE)
    async def act(request: Request) -> Response:
        try:
            await session.read_form(request)
        except session.FormError as refused:
            return ui.message(request, refused.status, "Refused", refused.message)
        action = request.url.path.rsplit("/", 1)[-1]
        workflow_id: int = request.path_params["id"]
        try:
            if not 0 < workflow_id < 2**63:
                raise pgq.WorkflowNotFoundError(workflow_id)
            if action == "cancel":
                await ui.queue.cancel_workflow(workflow_id)
            else:
                await ui.queue.retry_workflow(workflow_id)
        except pgq.WorkflowNotFoundError:
            return missing(request)
        return await ui.written(ui.redirect(request, "ui:workflow", {"done": _ACTIONS[action][1]}, id=workflow_id))

    return {"workflows": workflows, "workflow": workflow, "confirm": confirm, "act": act}
