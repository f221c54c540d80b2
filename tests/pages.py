"""Helpers for the tests of the pages behind mailed links (/confirm, /reset) and their codes."""

from __future__ import annotations

import sqlite3
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

import aiohttp
import attrs

from corelogin.server import ServerConfig


@attrs.frozen
class Answer:
    """An HTTP answer, read whole."""

    status: int
    content_type: str
    text: str
    headers: Mapping[str, str]


async def http(method: str, url: str, **kwargs: Any) -> Answer:
    async with aiohttp.ClientSession() as session, session.request(method, url, **kwargs) as r:
        return Answer(r.status, r.content_type, await r.text(), r.headers.copy())


async def open_page(url: str) -> Answer:
    """What a browser gets when the link is opened."""
    return await http("GET", url)


def assert_safe_page(answer: Answer) -> None:
    """A small HTML page with the headers that keep its code to itself."""
    assert answer.content_type == "text/html"
    csp = answer.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    # No script-src: scripts fall back to default-src, which allows nothing.
    assert "script-src" not in csp
    assert "default-src 'none'" in csp
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert answer.headers["Cache-Control"] == "no-store"
    assert "<script" not in answer.text.lower()


def age_codes(config: ServerConfig, purpose: str) -> None:
    """Make every code of ``purpose`` expire (a second ago), as time would."""
    db = sqlite3.connect(config.db.removeprefix("sqlite:///"), timeout=10)
    try:
        with db:
            db.execute("UPDATE codes SET expires = ? WHERE purpose = ?", (time.time() - 1, purpose))
    finally:
        db.close()


def code_of(link: str) -> str:
    """The code of a mailed link."""
    (code,) = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)["code"]
    return code
