"""The admin page's sign-in (issue 12): one message and one argon2 check for an unknown
operator and a wrong password, the lockout, the cookie's attributes, the session's rotation,
idle and absolute expiry on the server's clock, CSRF on every form (the sign-in's too), the
Origin check, sign-out, and the security headers on every /admin/ answer."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import attrs
import pytest

from corelogin.server import RunningServer, ServerConfig, start_server
from corelogin.server.admin.auth import SIGN_INS_PER_MINUTE
from corelogin.server.passwords import PasswordHasher
from corelogin.server.tokens import hash_token
from tests.adminpage import (
    OPERATOR,
    OPERATOR_PASSWORD,
    Browser,
    add_operator,
    assert_admin_headers,
    both_backends,  # noqa: F401 (the server_config fixture: SQLite and PostgreSQL)
    signed_in,
)

COOKIE = "corelogin_admin"


class Clock:
    """Unix seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class CountingHasher(PasswordHasher):
    """The server's hasher, counting the verifications it runs."""

    verified = 0

    async def verify(self, stored_hash: str | None, password: str, **kwargs: object) -> bool:
        self.verified += 1
        return await super().verify(stored_hash, password, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def timed(server_config: ServerConfig, clock: Clock) -> AsyncIterator[RunningServer]:
    """A server on `clock` whose operator sessions live 60 s idle, 200 s in all."""
    config = attrs.evolve(
        server_config,
        admin_idle_seconds=60,
        admin_absolute_seconds=200,
    )
    async with await start_server(config, clock=clock) as running:
        yield running


# -- signing in ------------------------------------------------------------------------------


async def test_signed_out_the_front_page_is_the_sign_in_form(server: RunningServer) -> None:
    async with Browser(server) as browser:
        page = await browser.get("/admin/")
    assert page.status == 200
    assert page.content_type == "text/html"
    assert 'action="/admin/sign-in"' in page.text
    assert '<meta name="viewport"' in page.text
    assert page.csrf()
    assert_admin_headers(page)
    made = page.cookies["corelogin_admin_sign_in"]
    assert (made["httponly"], made["samesite"], made["path"], made["secure"]) == (
        True,
        "Strict",
        "/admin/",
        "",
    )


async def test_an_operator_signs_in_and_sees_the_dashboard(server: RunningServer) -> None:
    await add_operator(server)
    async with Browser(server) as browser:
        answer = await browser.sign_in()
        assert (answer.status, answer.location) == (303, "/admin/")
        cookie = answer.cookies[COOKIE]
        assert cookie["httponly"] is True
        assert (cookie["samesite"], cookie["path"], cookie["secure"]) == ("Strict", "/admin/", "")
        token = cookie.value
        assert len(token) >= 43  # 32 random bytes
        # Only the token's hash is stored.
        session = await server.store.admin_session(hash_token(token))
        assert session is not None
        assert session.operator == OPERATOR
        page = await browser.get("/admin/")
    assert page.status == 200
    assert "Today" in page.text
    assert OPERATOR in page.text
    assert token not in page.text
    assert hash_token(token) not in page.text
    entries = await server.store.audit_log()
    assert [(e.operator, e.action) for e in entries] == [(OPERATOR, "sign_in")]


async def test_unknown_operator_and_wrong_password_answer_alike_after_one_check(
    server_config: ServerConfig,
) -> None:
    hasher = CountingHasher(workers=1)
    async with await start_server(server_config, hasher=hasher) as server:
        await add_operator(server)
        answers = []
        for name, password in ((OPERATOR, "wrong password!"), ("nobody", OPERATOR_PASSWORD)):
            async with Browser(server) as browser:
                before = hasher.verified
                answer = await browser.sign_in(name, password)
                assert hasher.verified - before == 1
                assert COOKIE not in answer.cookies
                answers.append((answer.status, answer.text.count("Wrong name or password.")))
    assert answers == [(401, 1), (401, 1)]


@pytest.mark.parametrize("name", [OPERATOR, "nobody"])
async def test_failed_sign_ins_lock_a_name_known_or_not(
    server_config: ServerConfig, name: str
) -> None:
    config = attrs.evolve(server_config, lockout_threshold=3)
    async with await start_server(config) as server, Browser(server) as browser:
        await add_operator(server)
        statuses = [(await browser.sign_in(name, "wrong password!")).status for _ in range(3)]
        locked = await browser.sign_in(name, OPERATOR_PASSWORD)
        assert statuses == [401, 401, 401]
        assert locked.status == 423
        assert "locked" in locked.text
        assert COOKIE not in locked.cookies
        # Another name is not locked.
        await add_operator(server, "otto")
        assert (await browser.sign_in("otto", OPERATOR_PASSWORD)).status == 303


async def test_sign_ins_from_one_address_are_rate_limited(server_config: ServerConfig) -> None:
    config = attrs.evolve(server_config, lockout_threshold=0)  # the rate limit alone
    async with await start_server(config) as server, Browser(server) as browser:
        await add_operator(server)
        statuses = [
            (await browser.sign_in(OPERATOR, "wrong password!")).status
            for _ in range(SIGN_INS_PER_MINUTE)
        ]
        limited = await browser.sign_in()
    assert statuses == [401] * SIGN_INS_PER_MINUTE
    assert limited.status == 429
    assert int(limited.headers["Retry-After"]) > 0
    assert limited.content_type == "text/html"
    assert_admin_headers(limited)


async def test_sign_in_needs_its_form_token_and_cookie(server: RunningServer) -> None:
    await add_operator(server)
    form = {"name": OPERATOR, "password": OPERATOR_PASSWORD}
    async with Browser(server) as browser:
        csrf = (await browser.get("/admin/")).csrf()
        without = await browser.post("/admin/sign-in", form)
        wrong = await browser.post("/admin/sign-in", {**form, "csrf": csrf[:-1] + "0"})
    async with Browser(server) as other:  # the token of another browser's form
        stolen = await other.post("/admin/sign-in", {**form, "csrf": csrf})
    for answer in (without, wrong, stolen):
        assert answer.status == 403
        assert COOKIE not in answer.cookies
        assert_admin_headers(answer)


async def test_a_sign_in_posted_from_another_site_is_refused(server: RunningServer) -> None:
    await add_operator(server)
    async with Browser(server) as browser:
        for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
            answer = await browser.sign_in(headers=headers)
            assert answer.status == 403
            assert COOKIE not in answer.cookies
        same = await browser.sign_in(headers={"Origin": server.url})
    assert same.status == 303


async def test_each_sign_in_opens_a_new_session_and_ends_the_old(server: RunningServer) -> None:
    await add_operator(server)
    async with Browser(server) as browser:
        csrf = (await browser.get("/admin/")).csrf()
        pre = browser.cookie("corelogin_admin_sign_in")
        assert pre is not None
        form = {"csrf": csrf, "name": OPERATOR, "password": OPERATOR_PASSWORD}
        assert (await browser.post("/admin/sign-in", form)).status == 303
        first = browser.cookie(COOKIE)
        # Signed in, the page has no sign-in form: post one again as if from another tab.
        browser.plant("corelogin_admin_sign_in", pre)
        assert (await browser.post("/admin/sign-in", form)).status == 303
        second = browser.cookie(COOKIE)
    assert first is not None
    assert second is not None
    assert second != first
    assert await server.store.admin_session(hash_token(first)) is None
    assert await server.store.admin_session(hash_token(second)) is not None


async def test_a_planted_cookie_is_not_the_session_after_sign_in(server: RunningServer) -> None:
    await add_operator(server)
    async with Browser(server) as browser:
        browser.plant(COOKIE, "x" * 43)
        await browser.sign_in()
        assert browser.cookie(COOKIE) != "x" * 43


# -- the session's lifetime ------------------------------------------------------------------


async def test_an_idle_session_ends(timed: RunningServer, clock: Clock) -> None:
    browser = await signed_in(timed)
    async with browser:
        clock.now += 59
        assert (await browser.get("/admin/users")).status == 200
        clock.now += 59  # used 59 s ago
        assert (await browser.get("/admin/users")).status == 200
        clock.now += 60  # idle for the limit (178 s after the sign-in)
        answer = await browser.get("/admin/users")
        assert (answer.status, answer.location) == (303, "/admin/?error=signed_out")
        front = await browser.request("GET", answer.location)
    assert 'action="/admin/sign-in"' in front.text
    assert "Your session has ended" in front.text


async def test_a_session_in_use_ends_at_its_absolute_limit(
    timed: RunningServer, clock: Clock
) -> None:
    browser = await signed_in(timed)
    async with browser:
        statuses = []
        for _ in range(6):  # 30, 60, ... 180 s: never idle
            clock.now += 30
            statuses.append((await browser.get("/admin/users")).status)
        clock.now += 20  # 200 s in all
        statuses.append((await browser.get("/admin/users")).status)
    assert statuses == [200] * 6 + [303]


# -- signing out -----------------------------------------------------------------------------


async def test_sign_out_ends_the_session(server: RunningServer) -> None:
    browser = await signed_in(server)
    async with browser:
        token = browser.cookie(COOKIE)
        assert token is not None
        csrf = await browser.csrf()
        refused = await browser.post("/admin/sign-out", {})
        assert refused.status == 403
        assert (await browser.get("/admin/users")).status == 200  # still signed in
        answer = await browser.post("/admin/sign-out", {"csrf": csrf})
        assert (answer.status, answer.location) == (303, "/admin/?done=signed_out")
        assert answer.cookies[COOKIE].value == ""  # deleted
        assert_admin_headers(answer)
        front = await browser.request("GET", answer.location)
        assert "You are signed out." in front.text
    assert await server.store.admin_session(hash_token(token)) is None
    async with Browser(server) as replay:  # the old cookie is worth nothing now
        replay.plant(COOKIE, token)
        assert (await replay.get("/admin/users")).status == 303


async def test_over_https_the_cookie_is_secure_and_host_prefixed(
    server_config: ServerConfig,
) -> None:
    config = attrs.evolve(server_config, public_url="https://admin.example")
    async with await start_server(config) as server:
        await add_operator(server)
        async with Browser(server) as browser:
            form = await browser.get("/admin/")
            pre = form.cookies["__Host-corelogin_admin_sign_in"]
            assert (pre["secure"], pre["path"]) == (True, "/")
            # The jar keeps Secure cookies away from http://: send them as a browser on
            # https would.
            headers = {"Cookie": f"__Host-corelogin_admin_sign_in={pre.value}"}
            answer = await browser.post(
                "/admin/sign-in",
                {"csrf": form.csrf(), "name": OPERATOR, "password": OPERATOR_PASSWORD},
                headers={**headers, "Origin": "https://admin.example"},
            )
            assert answer.status == 303
            cookie = answer.cookies["__Host-corelogin_admin"]
            assert cookie["httponly"] is True
            assert (cookie["secure"], cookie["samesite"], cookie["path"]) == (True, "Strict", "/")
            assert "domain" not in cookie or not cookie["domain"]
            page = await browser.request(
                "GET", "/admin/users", headers={"Cookie": f"__Host-corelogin_admin={cookie.value}"}
            )
    assert page.status == 200


# -- headers, errors -------------------------------------------------------------------------


async def test_every_admin_answer_is_html_with_the_security_headers(
    server: RunningServer,
) -> None:
    browser = await signed_in(server)
    async with browser, Browser(server) as stranger:
        answers = {
            "front": await browser.get("/admin/"),
            "users": await browser.get("/admin/users"),
            "css": await browser.get("/admin/static/admin.css"),
            "no slash": await browser.get("/admin"),
            "unknown page": await browser.get("/admin/nothing/here"),
            "unknown user": await browser.get("/admin/users/nobody"),
            "bad scope": await browser.get("/admin/users", scope="x" * 500),
            "wrong method": await browser.get("/admin/sign-out"),
            "no csrf": await browser.post("/admin/sign-out", {}),
            "not a form": await browser.request("POST", "/admin/sign-out", json={}),
            "signed out": await stranger.get("/admin/users"),
        }
    for name, answer in answers.items():
        assert_admin_headers(answer)
        assert answer.headers["Server"] == "corelogin", name
    assert answers["css"].content_type == "text/css"
    expected = {
        "no slash": 303,
        "unknown page": 404,
        "unknown user": 404,
        "bad scope": 400,
        "wrong method": 405,
        "no csrf": 403,
        "not a form": 415,
        "signed out": 303,
    }
    for name, status in expected.items():
        assert answers[name].status == status, name
        if status >= 400:
            assert answers[name].content_type == "text/html", name
            assert "<h1>Error" in answers[name].text, name
    assert "POST" in answers["wrong method"].headers["Allow"]
    assert answers["signed out"].location == "/admin/"  # no session ended: it had none


async def test_the_api_keeps_its_json_errors(server: RunningServer) -> None:
    async with Browser(server) as browser:
        answer = await browser.get("/v1/nothing")
    assert answer.status == 404
    assert answer.content_type == "application/json"
    assert "Content-Security-Policy" not in answer.headers
