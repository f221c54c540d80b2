"""The small HTML pages behind the links in mail (``/confirm``, ``/reset``).

jinja2 with autoescape on; no script at all, and headers that keep the pages' codes to
themselves: no referrer, no caching, no framing, a Content-Security-Policy that allows only the
page's own style sheet (by its hash).
"""

from __future__ import annotations

import base64
import functools
import hashlib
from importlib.resources import files

import jinja2
import markupsafe
from aiohttp import web

__all__ = ["page"]

_STYLE = (files("corelogin.server") / "pages" / "style.css").read_text(encoding="utf-8")
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()

HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@functools.cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("corelogin.server", "pages"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("page.html")


def page(
    title: str, message: str = "", *, status: int = 200, error: bool = False, code: str = ""
) -> web.Response:
    """A page with a title and a message; with ``code``, the form that sets a new password."""
    html = _template().render(
        title=title,
        message=message,
        kind="error" if error else "info",
        code=code,
        style=markupsafe.Markup(_STYLE),  # noqa: S704 (our own style sheet, not input)
    )
    return web.Response(
        text=html, status=status, content_type="text/html", charset="utf-8", headers=HEADERS
    )
