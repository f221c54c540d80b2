"""Helpers for the tests of the admin page (/admin/): an operator, a browser-like HTTP client
with its own cookie jar that signs in and posts the pages' forms, and `both_backends`, the
``server_config`` fixture of the admin tests: SQLite, and PostgreSQL when the tests have one."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from http.cookies import SimpleCookie
from typing import Any

import aiohttp
import attrs
import pytest
from yarl import URL

from corelogin.server import RunningServer, ServerConfig
from corelogin.server.context import HASHER
from corelogin.server.store.admin_base import Operator

OPERATOR = "olga"
OPERATOR_PASSWORD = "operator pass phrase 1"

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture(name="server_config", params=["sqlite", "postgresql"])
def both_backends(request: pytest.FixtureRequest, server_config: ServerConfig) -> ServerConfig:
    """conftest's `server_config`, on SQLite and on a PostgreSQL schema of the test's own
    (skipped without CORELOGIN_TEST_PG_DSN). Import it into a test module to use it."""
    if request.param == "postgresql":
        return attrs.evolve(server_config, db=request.getfixturevalue("pg_url"))
    return server_config


async def add_operator(
    server: RunningServer, name: str = OPERATOR, password: str = OPERATOR_PASSWORD
) -> None:
    """An operator made straight in the store, with the server's own hasher."""
    password_hash = await server.app[HASHER].hash(password)
    await server.store.add_operator(Operator(name, password_hash, created=time.time()))


@attrs.frozen
class Answer:
    status: int
    content_type: str
    text: str
    headers: Mapping[str, str]
    cookies: SimpleCookie

    @property
    def location(self) -> str:
        return self.headers["Location"]

    def csrf(self) -> str:
        found = _CSRF.search(self.text)
        assert found is not None, self.text
        return found.group(1)


class Browser:
    """What a browser does on the admin page, over real HTTP: a cookie jar (which, like a
    browser's, keeps cookies per path), no redirects followed unless asked."""

    def __init__(self, server: RunningServer) -> None:
        self.url = server.url
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def close(self) -> None:
        await self.session.close()

    async def __aenter__(self) -> Browser:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def request(self, method: str, path: str, **kwargs: Any) -> Answer:
        kwargs.setdefault("allow_redirects", False)
        async with self.session.request(method, self.url + path, **kwargs) as response:
            return Answer(
                response.status,
                response.content_type,
                await response.text(),
                response.headers.copy(),
                response.cookies,
            )

    async def get(self, path: str, **params: str) -> Answer:
        return await self.request("GET", path, params=params)

    async def post(self, path: str, form: Mapping[str, str], **kwargs: Any) -> Answer:
        return await self.request("POST", path, data=dict(form), **kwargs)

    async def sign_in(
        self, name: str = OPERATOR, password: str = OPERATOR_PASSWORD, **kwargs: Any
    ) -> Answer:
        """Open the sign-in form and send it; the answer to the POST."""
        form = await self.get("/admin/")
        csrf = form.csrf()
        return await self.post(
            "/admin/sign-in", {"csrf": csrf, "name": name, "password": password}, **kwargs
        )

    async def csrf(self, path: str = "/admin/users", **params: str) -> str:
        """The CSRF token of a signed-in page's forms."""
        return (await self.get(path, **params)).csrf()

    def plant(self, name: str, value: str, path: str = "/admin/") -> None:
        """Put a cookie in the jar as if the server had set it."""
        cookie: SimpleCookie = SimpleCookie()
        cookie[name] = value
        cookie[name]["path"] = path
        self.session.cookie_jar.update_cookies(cookie, response_url=URL(self.url))

    def cookie(self, name: str) -> str | None:
        found = [c.value for c in self.session.cookie_jar if c.key == name]
        return found[0] if found else None


async def signed_in(server: RunningServer) -> Browser:
    """A Browser signed in as the operator (made here)."""
    await add_operator(server)
    browser = Browser(server)
    answer = await browser.sign_in()
    assert (answer.status, answer.location) == (303, "/admin/"), answer
    return browser


def assert_admin_headers(answer: Answer) -> None:
    for name, value in HEADERS.items():
        assert answer.headers.get(name) == value, (name, answer.status)
