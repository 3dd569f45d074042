"""What every dashboard handler shares: the app, auth, templates and one render call."""

from __future__ import annotations

import dataclasses
import urllib.parse
from importlib import resources
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

import pgq
from pgq.api.auth import Auth, Scope
from pgq.api.reads import Reads
from pgq.api.ui import format as fmt
from pgq.api.ui import session


def _templates() -> Jinja2Templates:
    folder = resources.files("pgq.api.ui").joinpath("templates")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        autoescape=True,  # every job field is untrusted text
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(fmt.FILTERS)
    return Jinja2Templates(env=env)


class NotAllowed(Exception):
    """This browser has no token (go to the login page) or one that may not act."""

    def __init__(self, scope: Scope) -> None:
        super().__init__(scope.value)
        self.scope = scope


_SENTINEL = 7_340_000_000_000_000
"""Stands in for a path parameter while a route's path template is built once."""


@dataclasses.dataclass
class Ui:
    queue: pgq.App
    reads: Reads
    auth: Auth
    templates: Jinja2Templates = dataclasses.field(default_factory=_templates)
    _paths: dict[tuple[str, str, tuple[str, ...]], str] = dataclasses.field(default_factory=dict)

    def path(self, request: Request, route: str, **params: Any) -> str:
        """``request.url_for(route, **params).path``, with the route's template cached:
        url_for walks every route, and a page of 50 jobs links to each of them."""
        names = tuple(sorted(params))
        key = (request.scope.get("app_root_path", request.scope.get("root_path", "")), route, names)
        template = self._paths.get(key)
        if template is None:
            # An int: the {id:int} convertor takes nothing else; StaticFiles' path wants str.
            stand_ins = {name: _SENTINEL + i if name == "id" else str(_SENTINEL + i) for i, name in enumerate(names)}
            template = request.url_for(route, **stand_ins).path
            self._paths[key] = template
        for i, name in enumerate(names):
            template = template.replace(str(_SENTINEL + i), str(params[name]))
        return template

    async def written(self, response: Response) -> Response:
        """A write's answer, with the WAL position that reads its write back (api/positions.py)."""
        await self.reads.after_write(response)
        return response

    def allowed(self, request: Request, needed: Scope) -> Scope:
        """The browser's scope if it covers ``needed``; NotAllowed otherwise."""
        scope = session.access(request, self.auth)
        if scope is None or (needed is Scope.WRITE and scope is not Scope.WRITE):
            raise NotAllowed(needed)
        return scope

    def allowed_any(self, request: Request) -> bool:
        return session.access(request, self.auth) is not None

    def render(self, request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
        scope = session.access(request, self.auth)
        api_root = session.cookie_path(request)
        full = {
            "request": request,
            "can_write": scope is Scope.WRITE,
            "signed_in": self.auth.enabled and scope is not None,
            "csrf": session.csrf_token(request),
            "api_root": api_root,
            "path": lambda route, **params: self.path(request, route, **params),
            "query": query_string,
            **context,
        }
        response = self.templates.TemplateResponse(request, name, full, status_code=status)
        return session.remember(request, response)

    def message(self, request: Request, status: int, title: str, text: str) -> Response:
        return self.render(request, "message.html", {"title": title, "text": text}, status)

    def redirect(self, request: Request, route: str, params: dict[str, Any] | None = None, **path: Any) -> Response:
        url = request.url_for(route, **path).path + query_string(params or {})
        return session.remember(request, RedirectResponse(url, status_code=303))


def query_string(params: dict[str, Any], **extra: Any) -> str:
    """``?a=1&b=2`` from the non-empty values (empty string when there are none)."""
    kept = {k: v for k, v in {**params, **extra}.items() if v not in (None, "")}
    return "?" + urllib.parse.urlencode(kept) if kept else ""
