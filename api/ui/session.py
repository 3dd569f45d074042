"""Browser sessions for the dashboard: the token cookie, CSRF checks, security headers.

The token is asked for once (the login page) and kept in an HttpOnly, SameSite=Strict
cookie, so page scripts cannot read it and other sites cannot send it. Every action
also needs (1) a CSRF token: a random value kept in a second SameSite=Strict cookie and
repeated in a hidden form field (a cross-site page can read neither), and (2) an Origin
(or, failing that, Referer) header naming this host.
"""

from __future__ import annotations

import hmac
import secrets
import urllib.parse

from starlette.requests import Request
from starlette.responses import Response

from pgq.api.auth import TOKEN_COOKIE, Auth, Scope

CSRF_COOKIE = "pgq_csrf"
CSRF_FIELD = "csrf"
MAX_FORM_BYTES = 16 * 1024
"""Forms of the dashboard are a few fields; anything larger is refused before parsing."""

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class FormError(Exception):
    """A refused form: the status and the message shown to the user."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def cookie_path(request: Request) -> str:
    """The API's root path: the cookie must reach /events and /jobs/{id}/events too."""
    return request.url_for("ui:overview").path.removesuffix("ui/") or "/"


def access(request: Request, auth: Auth) -> Scope | None:
    """What this browser (or bearer client) may do: WRITE, READ, or nothing."""
    if not auth.enabled:
        return Scope.WRITE
    token = request.cookies.get(TOKEN_COOKIE)
    if token is None:
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        token = bearer.strip() if scheme.lower() == "bearer" else None
    return auth.scope_of(token) if token else None


def csrf_token(request: Request) -> str:
    """This browser's CSRF token (a new one if it has none yet; ``remember`` stores it)."""
    token = request.cookies.get(CSRF_COOKIE)
    if token is None or len(token) != 43:
        token = getattr(request.state, "new_csrf", None) or secrets.token_urlsafe(32)
        request.state.new_csrf = token
    return token


def remember(request: Request, response: Response) -> Response:
    """Add the security headers, and the CSRF cookie when this response created it."""
    response.headers.update(SECURITY_HEADERS)
    new = getattr(request.state, "new_csrf", None)
    if new is not None:
        _set_strict_cookie(request, response, CSRF_COOKIE, new)
    return response


def set_token_cookie(request: Request, response: Response, token: str) -> None:
    _set_strict_cookie(request, response, TOKEN_COOKIE, token)


def _set_strict_cookie(request: Request, response: Response, name: str, value: str) -> None:
    """The dashboard's own cookies: this path only, no script access, never sent cross-site."""
    response.set_cookie(
        name,
        value,
        path=cookie_path(request),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_token_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(TOKEN_COOKIE, path=cookie_path(request), httponly=True, samesite="strict")


def _same_origin(request: Request) -> bool:
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return False
    return urllib.parse.urlsplit(source).netloc == request.headers.get("host", "")


async def read_form(request: Request) -> dict[str, str]:
    """The posted form, after the Origin and CSRF checks; FormError otherwise."""
    if not _same_origin(request):
        raise FormError(403, "refused: this form was not sent from this dashboard (Origin/Referer mismatch)")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormError(413, f"refused: a form larger than {MAX_FORM_BYTES} bytes")
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise FormError(415, "refused: expected an HTML form (application/x-www-form-urlencoded)")
    try:
        form = dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=False))
    except UnicodeDecodeError:
        raise FormError(400, "refused: the form is not UTF-8") from None
    expected = request.cookies.get(CSRF_COOKIE, "")
    given = form.get(CSRF_FIELD, "")
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise FormError(403, "refused: the CSRF token is missing or wrong; reload the page and try again")
    return form
