"""The dashboard's actions (POST): sign in and out, cancel, retry, bulk, pause, resume.

Every form passes session.read_form (Origin + CSRF) before anything else; every action
but signing in needs a write token. Each answers with a redirect (303) to a page that
shows the outcome, so a reload never repeats an action.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

import pgq
from pgq.api.auth import Scope
from pgq.api.ui import session
from pgq.api.ui.pages import Handler, guarded
from pgq.api.ui.render import Ui
from pgq.db import dashboard as data

_BULK = {
    "retry": ("Retry failed jobs", ("failed",), "bulk_retried"),
    "cancel": ("Cancel waiting jobs", data.WAITING_STATES, "bulk_cancelled"),
}


def _bulk_filter(values: dict[str, str]) -> tuple[str, str | None, str | None]:
    action = values.get("action", "")
    if action not in _BULK:
        raise ValueError(f"unknown bulk action {action!r}: retry or cancel")
    queue = values.get("queue", "").strip() or None
    task = values.get("task", "").strip() or None
    if any(v is not None and len(v) > 255 for v in (queue, task)):
        raise ValueError("queue and task are at most 255 characters")
    return action, queue, task


def _safe_next(request: Request, values: Mapping[str, str]) -> str | None:
    """Where to go after signing in: only a path of this dashboard (no open redirect)."""
    target = values.get("next", "")
    home = request.url_for("ui:overview").path
    if target.startswith(home) and "//" not in target and "\\" not in target:
        return target
    return None


def routes(ui: Ui) -> dict[str, Handler]:
    queue = ui.queue

    async def form(request: Request) -> dict[str, str] | Response:
        try:
            return await session.read_form(request)
        except session.FormError as refused:
            return ui.message(request, refused.status, "Refused", refused.message)

    async def login_page(request: Request) -> Response:
        if not ui.auth.enabled:
            return ui.redirect(request, "ui:overview")
        return ui.render(request, "login.html", {"error": None, "next": _safe_next(request, request.query_params)})

    async def login(request: Request) -> Response:
        values = await form(request)
        if isinstance(values, Response):
            return values
        token = values.get("token", "").strip()
        if not ui.auth.enabled:
            return ui.redirect(request, "ui:overview")
        if not token or ui.auth.scope_of(token) is None:
            context = {"error": "That token is not valid here.", "next": _safe_next(request, values)}
            return ui.render(request, "login.html", context, status=401)
        target = _safe_next(request, values)
        response = (
            ui.redirect(request, "ui:overview")
            if target is None
            else session.remember(request, RedirectResponse(target, status_code=303))
        )
        session.set_token_cookie(request, response, token)
        return response

    async def logout(request: Request) -> Response:
        values = await form(request)
        if isinstance(values, Response):
            return values
        response = ui.redirect(request, "ui:login")
        session.clear_token_cookie(request, response)
        return response

    async def job_action(request: Request, action: str) -> Response:
        values = await form(request)
        if isinstance(values, Response):
            return values
        job_id: int = request.path_params["id"]
        try:
            if action == "cancel":
                job = await queue.cancel(job_id)
                done = "cancelled" if job.state is pgq.JobState.CANCELLED else "cancel_requested"
            else:
                await queue.retry(job_id)
                done = "retried"
        except pgq.JobNotFoundError:
            return ui.message(request, 404, "No such job", f"There is no job {job_id}.")
        except pgq.JobStateError as exc:
            return ui.message(request, 409, "Not possible", str(exc))
        return await ui.written(ui.redirect(request, "ui:job", {"done": done}, id=job_id))

    @guarded(ui, Scope.WRITE)
    async def cancel(request: Request) -> Response:
        return await job_action(request, "cancel")

    @guarded(ui, Scope.WRITE)
    async def retry(request: Request) -> Response:
        return await job_action(request, "retry")

    @guarded(ui, Scope.WRITE)
    async def bulk_confirm(request: Request) -> Response:
        """The confirmation page: how many jobs the action would change, right now."""
        try:
            action, queue_name, task = _bulk_filter(dict(request.query_params))
        except ValueError as exc:
            return ui.message(request, 400, "Bad filter", str(exc))
        title, states, _ = _BULK[action]
        count = await ui.reads.read(request, lambda app: app.run(data.count_matching(states, queue_name, task)))
        context = {"action": action, "title": title, "count": count, "queue": queue_name, "task": task}
        return ui.render(request, "confirm.html", context)

    @guarded(ui, Scope.WRITE)
    async def bulk(request: Request) -> Response:
        values = await form(request)
        if isinstance(values, Response):
            return values
        try:
            action, queue_name, task = _bulk_filter(values)
        except ValueError as exc:
            return ui.message(request, 400, "Bad filter", str(exc))
        if action == "retry":
            changed = await queue.run(data.retry_matching(queue_name, task))
            state = "failed"
        else:
            changed = await queue.run(data.cancel_waiting_matching(queue_name, task))
            state = "cancelled"
        params = {"queue": queue_name, "task": task, "state": state, "done": _BULK[action][2], "n": changed}
        return await ui.written(ui.redirect(request, "ui:jobs", params))

    async def queue_action(request: Request, pause: bool) -> Response:
        values = await form(request)
        if isinstance(values, Response):
            return values
        name: str = request.path_params["name"]
        try:
            if pause:
                await queue.pause_queue(name)
            else:
                await queue.resume_queue(name)
        except ValueError as exc:
            return ui.message(request, 400, "Bad queue name", str(exc))
        return await ui.written(ui.redirect(request, "ui:overview", {"done": "paused" if pause else "resumed"}))

    @guarded(ui, Scope.WRITE)
    async def pause(request: Request) -> Response:
        return await queue_action(request, pause=True)

    @guarded(ui, Scope.WRITE)
    async def resume(request: Request) -> Response:
        return await queue_action(request, pause=False)

    return {
        "login_page": login_page,
        "login": login,
        "logout": logout,
        "cancel": cancel,
        "retry": retry,
        "bulk_confirm": bulk_confirm,
        "bulk": bulk,
        "pause": pause,
        "resume": resume,
    }
