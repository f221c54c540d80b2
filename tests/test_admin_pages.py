"""The admin page's pages (issue 12): the day's figures and chart, the users list (search,
filters, sorting, keyset pages), one user's page (and what it never shows), and escaping of
whatever users put in their names, addresses and extra."""

from __future__ import annotations

import datetime
import html
import re
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest

from corelogin.server import RunningServer, ServerConfig, start_server
from corelogin.server.admin.chart import Series, bar_chart, last_days
from corelogin.server.config import ProviderConfig
from corelogin.server.store import LoginEvent, ProviderLink, SessionRecord, UserRecord
from corelogin.server.store.base import FailedLogin, LockoutRule
from corelogin.server.tokens import hash_token
from tests.adminpage import (
    Browser,
    both_backends,  # noqa: F401 (the server_config fixture: SQLite and PostgreSQL)
    signed_in,
)

DAY = 24 * 3600
_USER_LINK = re.compile(r'<a href="/admin/users/([^"?]+)\?scope=[^"]*">([^<]*)</a>')
_NEXT = re.compile(r'rel="next" href="([^"]+)"')


@pytest.fixture
async def running(server_config: ServerConfig) -> AsyncIterator[RunningServer]:
    config = attrs.evolve(
        server_config, providers={"game": ProviderConfig(policy="trust_client_id")}
    )
    async with await start_server(config) as server:
        yield server


@pytest.fixture
async def operator(running: RunningServer) -> AsyncIterator[Browser]:
    browser = await signed_in(running)
    async with browser:
        yield browser


async def add_user(server: RunningServer, username: str, **fields: Any) -> UserRecord:
    """A user written straight to the store (no password hashing: fast)."""
    values: dict[str, Any] = {
        "user_id": str(uuid.uuid4()),
        "scope": "default",
        "username": username,
        "email": None,
        "password_hash": "",
        "active": True,
        "confirmation": None,
        "group": None,
        "extra": None,
        "created": int(time.time()),
    }
    user = UserRecord(**{**values, **fields})
    await server.store.create_user(user)
    return user


async def add_login(
    server: RunningServer, user: UserRecord, at: float, *, agent: str = "GameClient/1.0"
) -> str:
    """A session and its login event at ``at``; the session's token."""
    token = f"token-{uuid.uuid4()}"
    session = SessionRecord(hash_token(token), user.user_id, created=at, expires=at + DAY)
    await server.store.open_session(session, LoginEvent(user.user_id, at, "192.0.2.7", agent))
    return token


async def fail(
    server: RunningServer, identifier: str, *, agent: str = "Bot", lock: bool = False
) -> None:
    rule = LockoutRule(1, 900, 900) if lock else None
    failure = FailedLogin(
        "default", identifier, time.time(), "198.51.100.9", agent, "wrong password"
    )
    await server.store.record_failure(failure, rule)


def figure(page: str, label: str) -> int:
    found = re.search(rf'<span class="figure">(\d+)</span> {label}', page)
    assert found is not None, label
    return int(found.group(1))


def listed(page: str) -> list[str]:
    return [html.unescape(name) for _, name in _USER_LINK.findall(page)]


# -- today ------------------------------------------------------------------------------------


async def test_the_dashboard_shows_the_days_figures(
    running: RunningServer, operator: Browser
) -> None:
    now = time.time()
    donna = await add_user(running, "Donna", created=int(now))
    tina = await add_user(running, "Tina", created=int(now))
    await add_user(running, "Old", created=int(now - 3 * DAY))
    await add_user(running, "Waiting", active=False, confirmation="pending", email="w@x.example")
    await add_user(running, "Elsewhere", scope="other")
    await add_login(running, donna, now)
    await add_login(running, tina, now)
    await add_login(running, donna, now - 5 * DAY)
    await fail(running, "tina")
    await fail(running, "mallory", lock=True)

    page = (await operator.get("/admin/")).text

    assert figure(page, "joins today") == 3  # Donna, Tina, Waiting
    assert figure(page, "logins today") == 2
    assert figure(page, "awaiting confirmation") == 1
    assert figure(page, "identifiers locked") == 1
    assert figure(page, "failed logins in the last hour") == 2
    assert "<td>mallory</td>" in page
    today = datetime.datetime.now(datetime.UTC).date()
    earlier = (today - datetime.timedelta(days=3)).isoformat()
    assert '<svg class="chart"' in page
    assert f"<title>{today.isoformat()}: 3 joins</title>" in page
    assert f"<title>{today.isoformat()}: 2 logins</title>" in page
    assert f"<title>{earlier}: 1 joins</title>" in page
    assert "joins (4)" in page  # over the 30 days
    assert "logins (3)" in page

    other = (await operator.get("/admin/", scope="other")).text
    assert figure(other, "joins today") == 1
    assert figure(other, "logins today") == 0


# -- the users list ---------------------------------------------------------------------------


async def test_search_and_filters(running: RunningServer, operator: Browser) -> None:
    now = int(time.time())
    donna = await add_user(running, "Donna", email="donna@home.example", group="red", created=now)
    await add_user(running, "Dora", email="dora@work.example", group="blue", created=now - 10)
    await add_user(running, "Tina", active=False, created=now - 20)
    await add_user(
        running,
        "Paula",
        active=False,
        confirmation="pending",
        email="p@x.example",
        created=now - 30,
    )
    await add_user(running, "Donald", scope="other", created=now)
    await fail(running, "dora", lock=True)

    async def names(**query: str) -> list[str]:
        answer = await operator.get("/admin/users", **query)
        assert answer.status == 200, answer.text
        return listed(answer.text)

    assert await names() == ["Donna", "Dora", "Tina", "Paula"]  # newest first
    assert await names(q="do") == ["Donna", "Dora"]  # username prefix, any case
    assert await names(q="DONNA@home") == ["Donna"]  # email prefix
    assert await names(q=donna.user_id) == ["Donna"]  # exact id
    assert await names(group="blue") == ["Dora"]
    assert await names(active="no") == ["Tina", "Paula"]
    assert await names(active="yes") == ["Donna", "Dora"]
    assert await names(pending="yes") == ["Paula"]
    assert await names(pending="no", active="no") == ["Tina"]
    assert await names(locked="yes") == ["Dora"]
    assert await names(scope="other") == ["Donald"]
    assert await names(q="nobody") == []


async def test_sorting_by_last_login(running: RunningServer, operator: Browser) -> None:
    now = time.time()
    first = await add_user(running, "First", created=int(now - 100))
    second = await add_user(running, "Second", created=int(now - 50))
    await add_user(running, "Never", created=int(now))
    await add_login(running, first, now - 10)
    await add_login(running, second, now - 20)
    by_created = listed((await operator.get("/admin/users", order="created")).text)
    by_login = listed((await operator.get("/admin/users", order="last_login")).text)
    assert by_created == ["Never", "Second", "First"]
    assert by_login[:2] == ["First", "Second"]
    assert set(by_login) == {"First", "Second", "Never"}


async def test_pages_follow_one_another_without_gaps_or_repeats(
    running: RunningServer, operator: Browser
) -> None:
    now = int(time.time())
    for number in range(120):
        await add_user(running, f"user{number:03}", created=now - number)
    seen: list[str] = []
    path, query = "/admin/users", {"scope": "default"}
    pages = 0
    while True:
        answer = await operator.get(path, **query)
        seen += listed(answer.text)
        pages += 1
        found = _NEXT.search(answer.text)
        if found is None:
            break
        path, _, rest = html.unescape(found.group(1)).partition("?")
        query = dict(urllib.parse.parse_qsl(rest))
        assert "First page" in (await operator.get(path, **query)).text
    assert pages == 3
    assert seen == [f"user{number:03}" for number in range(120)]


async def test_bad_list_parameters_are_400(operator: Browser) -> None:
    for query in ({"active": "maybe"}, {"order": "name"}, {"q": "x" * 321}, {"after": "junk"}):
        answer = await operator.get("/admin/users", **query)
        assert answer.status == 400, query
        assert answer.content_type == "text/html"


# -- one user ---------------------------------------------------------------------------------


async def test_the_user_page_shows_the_record_and_never_a_secret(
    running: RunningServer, operator: Browser
) -> None:
    user = await add_user(
        running,
        "Donna",
        email="donna@home.example",
        group="players",
        extra={"level": 3},
        password_hash="$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
    )
    token = await add_login(running, user, time.time(), agent="GameClient/2.5")
    await running.store.add_link(
        ProviderLink(
            user.user_id,
            "default",
            "game",
            "donna-at-game",
            access_token="provider-secret-token-123",
            access_token_expiry=int(time.time()) + 3600,
            created=time.time(),
        )
    )
    await fail(running, "donna", agent="Guesser/0.1")
    await fail(running, "@donna@home.example", agent="Guesser/0.2")

    page = (await operator.get(f"/admin/users/{user.user_id}")).text

    for shown in (
        user.user_id,
        "donna@home.example",
        "players",
        "&#34;level&#34;: 3",
        "donna-at-game",
        "GameClient/2.5",
        "192.0.2.7",
        "Guesser/0.1",
        "Guesser/0.2",
        "198.51.100.9",
        "Deactivate",
        "End all sessions",
    ):
        assert shown in page, shown
    for secret in (
        user.password_hash,
        "argon2",
        token,
        hash_token(token),
        "provider-secret-token-123",
    ):
        assert secret not in page, secret


# -- escaping ---------------------------------------------------------------------------------

NASTY = '<script>alert("x")</script>\'"&'


async def test_what_users_typed_is_shown_as_text(running: RunningServer, operator: Browser) -> None:
    user = await add_user(
        running,
        NASTY,
        email="\"><script>alert('e')</script>@x.example",
        group="<i>g</i>\"'",
        extra={"</pre><script>": "</pre><script>alert('extra')</script>\"'"},
    )
    await add_login(running, user, time.time(), agent="<script>alert('ua')</script>")
    await fail(running, "<script>", agent="<script>alert('fail')</script>", lock=True)
    path = f"/admin/users/{user.user_id}"
    csrf = await operator.csrf(path)
    await operator.post(f"{path}/group", {"csrf": csrf, "scope": "default", "group": NASTY})

    pages = {
        "dashboard": await operator.get("/admin/"),
        "list": await operator.get("/admin/users"),
        "search": await operator.get("/admin/users", q=NASTY),
        "user": await operator.get(path),
        "delete": await operator.get(f"{path}/delete"),
    }
    for name, answer in pages.items():
        assert answer.status == 200, name
        assert "<script" not in answer.text.lower(), name
        assert "&lt;script&gt;" in answer.text, name
    user_page = pages["user"].text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&#39;&#34;&amp;" in user_page
    assert "&lt;/pre&gt;&lt;script&gt;alert(&#39;extra&#39;)" in user_page
    assert listed(pages["list"].text) == [NASTY]


async def test_the_query_cannot_put_words_on_the_page(operator: Browser) -> None:
    page = await operator.get("/admin/users", error="<b>call us</b>", done="Pay here")
    assert "call us" not in page.text
    assert "Pay here" not in page.text
    assert 'class="flash' not in page.text


# -- the chart on its own ---------------------------------------------------------------------


def test_the_chart_escapes_and_scales() -> None:
    days = last_days(time.time(), 3)
    assert len(days) == 3
    assert days[-1] == datetime.datetime.now(datetime.UTC).date().isoformat()
    svg = bar_chart(
        days, [Series("<joins>", "joins", {days[0]: 2, days[2]: 4})], label='a "label" <x>'
    )
    assert "<x>" not in svg
    assert "&lt;joins&gt;" in svg
    assert 'aria-label="a &#34;label&#34; &lt;x&gt;"' in svg
    assert svg.count("<rect ") == 3
    assert 'height="142"' in svg  # the top bar fills the plot
    assert 'height="71"' in svg
