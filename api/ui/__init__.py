"""The dashboard at /ui: server-rendered pages over the same tables as the JSON API.

Pages are Jinja2 templates (autoescaped: job data is untrusted), a stylesheet and one
small script served from this package; no CDN and no inline script, so a strict
Content-Security-Policy holds. Live updates come from the API's event streams.
"""

from __future__ import annotations

from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import pgq
from pgq.api.auth import Auth
from pgq.api.reads import Reads
from pgq.api.ui import actions, pages, workflows
from pgq.api.ui.render import Ui


def mount(queue: pgq.App, reads: Reads, auth: Auth) -> Mount:
    ui = Ui(queue, reads, auth)
    page = pages.routes(ui)
    act = actions.routes(ui)
    flows = workflows.routes(ui)
    return Mount(
        "/ui",
        name="ui",
        routes=[
            Route("/", page["overview"], methods=["GET"], name="overview"),
            Route("/jobs", page["jobs"], methods=["GET"], name="jobs"),
            Route("/jobs/bulk", act["bulk_confirm"], methods=["GET"], name="bulk_confirm"),
            Route("/jobs/bulk", act["bulk"], methods=["POST"], name="bulk"),
            Route("/jobs/{id:int}", page["job"], methods=["GET"], name="job"),
            Route("/jobs/{id:int}/cancel", act["cancel"], methods=["POST"], name="cancel"),
            Route("/jobs/{id:int}/retry", act["retry"], methods=["POST"], name="retry"),
            Route("/queues/{name}/pause", act["pause"], methods=["POST"], name="pause"),
            Route("/queues/{name}/resume", act["resume"], methods=["POST"], name="resume"),
            Route("/workflows", flows["workflows"], methods=["GET"], name="workflows"),
            Route("/workflows/{id:int}", flows["workflow"], methods=["GET"], name="workflow"),
            Route("/workflows/{id:int}/cancel", flows["confirm"], methods=["GET"], name="workflow_cancel_confirm"),
            Route("/workflows/{id:int}/cancel", flows["act"], methods=["POST"], name="workflow_cancel"),
            Route("/workflows/{id:int}/retry", flows["confirm"], methods=["GET"], name="workflow_retry_confirm"),
            Route("/workflows/{id:int}/retry", flows["act"], methods=["POST"], name="workflow_retry"),
            Route("/tasks", page["tasks"], methods=["GET"], name="tasks"),
            Route("/workers", page["workers"], methods=["GET"], name="workers"),
            Route("/schedules", page["schedules"], methods=["GET"], name="schedules"),
            Route("/login", act["login_page"], methods=["GET"], name="login_page"),
            Route("/login", act["login"], methods=["POST"], name="login"),
            Route("/logout", act["logout"], methods=["POST"], name="logout"),
            Mount("/static", StaticFiles(packages=[("pgq.api.ui", "static")]), name="static"),
        ],
    )
