"""HTML answers of the admin page: its templates, its security headers, and the middleware that
keeps every ``/admin/`` answer an HTML page with those headers, failures included.

The server's JSON envelope (corelogin.server.envelope) turns every failure into
``{"error", "status"}``: right for the API, wrong for a page a person reads. This middleware
sits inside the envelope's and, for ``/admin/`` paths only, answers every failure itself (an
unknown page, a wrong method, a refused form, a busy hasher, a database that is down, a bug),
so the envelope never sees one there; every other path passes through untouched. The headers
(OWASP's secure headers) go on every ``/admin/`` answer, the style sheet and redirects
included: a CSP that allows no script at all and only the page's own style sheet, no framing,
no referrer leaving the site, no sniffing, no caching of pages that show users' data.
"""

from __future__ import annotations

import datetime
import functools
import logging
from collections.abc import Mapping
from importlib.resources import files
from typing import Any, Final
from urllib.parse import quote, urlencode

import jinja2
from aiohttp import web
from aiohttp.typedefs import Handler

from corelogin.server.store import StoreUnavailable
from corelogin.wire import ApiError, check_scope

__all__ = [
    "PREFIX",
    "SECURITY_HEADERS",
    "PageError",
    "checked_scope",
    "error_page",
    "link",
    "middleware",
    "redirect",
    "render",
    "style_sheet",
    "user_link",
]

log = logging.getLogger("corelogin.server")

PREFIX: Final = "/admin/"

SECURITY_HEADERS: Final[Mapping[str, str]] = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_STATIC = files("corelogin.server.admin") / "static"


class PageError(Exception):
    """A request the page refuses, with the HTTP status and a sentence for the operator."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def checked_scope(scope: str | None) -> str:
    """A scope from a query or a form (``"default"`` when none is given); 400 for a bad one."""
    try:
        return check_scope(scope or "default")
    except ApiError as exc:
        raise PageError(400, f"scope: {exc.message}") from None


def link(path: str, **params: object) -> str:
    """``path`` with the non-empty ``params`` as its query."""
    query = urlencode(
        {name: str(value) for name, value in params.items() if value not in (None, "")}
    )
    return f"{path}?{query}" if query else path


def user_link(user_id: str, scope: str, action: str = "", **params: object) -> str:
    """The page of one user (or the path of one of its actions)."""
    path = f"{PREFIX}users/{quote(user_id, safe='')}"
    return link(f"{path}/{action}" if action else path, scope=scope, **params)


def when(at: float | None) -> str:
    """A time as the page shows it: UTC, to the second."""
    if at is None:
        return "never"
    moment = datetime.datetime.fromtimestamp(at, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


@functools.cache
def environment() -> jinja2.Environment:
    """Autoescape on for every template (whatever its name), and StrictUndefined: a name the
    view forgot is an error, never an empty string."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("corelogin.server.admin", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.globals.update(link=link, user_link=user_link)
    env.filters["when"] = when
    return env


def render(
    template: str, *, status: int = 200, signed: object = None, **context: Any
) -> web.Response:
    """A page from ``template``; ``signed`` (the operator's `auth.Signed`, None when signed
    out) fills the header's navigation."""
    context.setdefault("scope", "default")
    context.setdefault("flash", None)
    html = environment().get_template(template).render(signed=signed, **context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def redirect(location: str) -> web.Response:
    """303 See Other: what a form's POST answers, so that reloading does not post again."""
    return web.Response(status=303, headers={"Location": location})


def error_page(status: int, message: str) -> web.Response:
    return render("error.html", status=status, title=f"Error {status}", message=message)


@functools.cache
def _css() -> str:
    return (_STATIC / "admin.css").read_text(encoding="utf-8")


async def style_sheet(request: web.Request) -> web.Response:
    """GET /admin/static/admin.css: the one style sheet (the CSP allows no other)."""
    return web.Response(text=_css(), content_type="text/css", charset="utf-8")


def _is_admin(path: str) -> bool:
    return path == PREFIX.rstrip("/") or path.startswith(PREFIX)


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """For ``/admin/`` paths: every failure as an HTML page, and the security headers."""
    if not _is_admin(request.path):
        return await handler(request)
    response: web.StreamResponse
    try:
        response = await handler(request)
    except PageError as exc:
        response = error_page(exc.status, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            response = web.Response(status=exc.status, headers=exc.headers)
        else:  # an unknown page, a wrong method, a body too large
            response = error_page(exc.status, exc.reason)
            if "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
    except ApiError as exc:  # a busy hasher, a rate limit: the API's own status
        response = error_page(exc.http_status, exc.message)
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(exc.retry_after)
    except StoreUnavailable as exc:
        log.warning("%s %s: %s", request.method, request.path, exc)
        response = error_page(503, "The database is unavailable; try again in a moment.")
        response.headers["Retry-After"] = "1"
    except ConnectionError:  # the client went away: nobody to show a page to
        raise
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        response = error_page(500, "Something went wrong on the server; it has been logged.")
    response.headers.update(SECURITY_HEADERS)
    return response
