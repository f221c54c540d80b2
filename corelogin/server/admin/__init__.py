"""The admin page of the reference server, at ``/admin/`` (issue 12; docs/admin.md).

Operators (made with ``corelogin admin add``; there is no default account) sign in to look
after the users of a game: the day's figures, the users of a scope, one user with its sessions,
logins and failed logins, and actions that are all recorded in an audit log. Server-rendered
HTML (jinja2, autoescaped), one style sheet, no script: it works in any browser, on a phone,
with JavaScript off, and with no CDN in reach.

The modules, one concern each: `responses` (templates, security headers, the middleware that
keeps every /admin/ answer HTML), `auth` (sign-in, cookie sessions, CSRF), `dashboard`,
`users` (the list and one user's page), `actions` (the POSTs), `chart` (SVG), `audit`,
`messages` (what a page says after a form), `cli` (``corelogin admin``).
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from corelogin.server.admin import actions, auth, dashboard, users
from corelogin.server.admin.responses import PREFIX, middleware, redirect, style_sheet

__all__ = ["ROUTES", "middleware", "setup"]


async def _to_front(request: web.Request) -> web.Response:
    return redirect(PREFIX)


ROUTES: Final = [
    web.get(PREFIX.rstrip("/"), _to_front),
    web.get(PREFIX, dashboard.home),
    web.post(f"{PREFIX}sign-in", auth.sign_in),
    web.post(f"{PREFIX}sign-out", auth.sign_out),
    web.get(f"{PREFIX}users", users.users_list),
    web.get(f"{PREFIX}users/{{user_id}}", users.user_page),
    web.get(f"{PREFIX}users/{{user_id}}/delete", users.delete_page),
    web.post(f"{PREFIX}users/{{user_id}}/{{action}}", actions.act),
    web.get(f"{PREFIX}static/admin.css", style_sheet),
]


def setup(app: web.Application) -> None:
    """Serve the admin page from ``app`` (its `middleware` must be among the app's, inside
    the JSON envelope's: corelogin.server.app does both)."""
    app.add_routes(ROUTES)
