"""Two ``corelogin serve`` processes on one PostgreSQL database behave as one server: what one
instance writes (a session, a revoke, a failure, a used token, a name) holds on the other at
once (DESIGN.md §4)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from tests.helpers import PASSWORD
from tests.instances import call, gather_split, instances

pytestmark = pytest.mark.timeout(90)

USER = {"username": "Donna", "password": PASSWORD}


@pytest.fixture
def ab(pg_url: str) -> Iterator[list[str]]:
    """The URLs of instances A and B, on one database (lockout after 4 failures)."""
    with instances(pg_url, lockout_threshold=4) as urls:
        yield urls


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def login(http: aiohttp.ClientSession, url: str, **params: Any) -> dict[str, Any]:
    """A session token and the user's id from a login on ``url`` (fails the test otherwise)."""
    status, envelope = await call(http, url, "login", {**USER, **params})
    assert status == 200, envelope
    return {"token": envelope["session"]["token"], "user_id": envelope["result"]["user_id"]}


async def get_own(http: aiohttp.ClientSession, url: str, session: dict[str, Any]) -> int:
    """The HTTP status of a get of one's own user with the session."""
    status, _ = await call(
        http, url, "get", {"user_id": session["user_id"]}, token=session["token"]
    )
    return status


async def test_a_session_opened_on_one_instance_works_on_the_other(
    ab: list[str], http: aiohttp.ClientSession
) -> None:
    a, b = ab
    assert (await call(http, a, "create", USER))[0] == 200
    session = await login(http, a)
    status, envelope = await call(
        http, b, "get", {"user_id": session["user_id"]}, token=session["token"]
    )
    assert status == 200
    assert envelope["result"]["username"] == "Donna"


async def test_a_logout_on_one_instance_is_refused_on_the_other_at_once(
    ab: list[str], http: aiohttp.ClientSession
) -> None:
    a, b = ab
    await call(http, a, "create", USER)
    session = await login(http, a)
    assert await get_own(http, b, session) == 200
    assert (await call(http, a, "logout", token=session["token"]))[0] == 200
    status, envelope = await call(
        http, b, "get", {"user_id": session["user_id"]}, token=session["token"]
    )
    assert (status, envelope["status"]) == (401, 609)


async def test_a_password_change_on_one_instance_ends_the_sessions_on_the_other(
    ab: list[str], http: aiohttp.ClientSession
) -> None:
    a, b = ab
    await call(http, a, "create", USER)
    on_a, on_b = await login(http, a), await login(http, b)
    changed = await call(
        http,
        a,
        "update",
        {
            "user_id": on_a["user_id"],
            "update": {"password": "another long secret", "current_password": PASSWORD},
        },
        token=on_a["token"],
    )
    assert changed[0] == 200, changed
    assert await get_own(http, b, on_b) == 401
    assert await get_own(http, b, on_a) == 200  # the session that changed it stays


async def test_a_deactivation_on_one_instance_ends_the_sessions_on_the_other(
    ab: list[str], http: aiohttp.ClientSession
) -> None:
    a, b = ab
    await call(http, a, "create", USER)
    on_b = await login(http, b)
    done = await call(
        http, a, "update", {"user_id": on_b["user_id"], "update": {"active": False}}, admin=True
    )
    assert done[0] == 200, done
    assert await get_own(http, b, on_b) == 401


async def test_lockout_counts_the_failures_of_both_instances_together(
    ab: list[str], http: aiohttp.ClientSession
) -> None:
    a, b = ab
    await call(http, a, "create", USER)
    wrong = {**USER, "password": "not the password"}
    for url in (a, b, a, b):  # 4 failures, 2 on each: the threshold is 4
        assert (await call(http, url, "login", wrong))[1]["status"] == 603
    for url in (a, b):
        status, envelope = await call(http, url, "login", USER)
        assert (status, envelope["status"]) == (423, 606)


async def test_a_one_time_token_used_on_both_instances_at_once_logs_in_once(
    ab: list[str], http: aiohttp.ClientSession
) -> None:
    a, b = ab
    created = await call(http, a, "create", USER)
    user_id = created[1]["result"]["user_id"]
    token = await call(http, b, "create_auth_token", {"user_id": user_id}, admin=True)
    auth_token = token[1]["result"]["auth_token"]
    answers = await gather_split(
        http, [a, b], 20, "login_with_auth_token", {"auth_token": auth_token}
    )
    assert sum("result" in answer for answer in answers) == 1
    assert sorted(answer.get("status", 0) for answer in answers) == [0] + [615] * 19


async def test_fifty_creates_of_one_username_on_two_instances_make_one_user(
    ab: list[str], http: aiohttp.ClientSession
) -> None:
    answers = await gather_split(http, ab, 50, "create", USER)
    assert sum("result" in answer for answer in answers) == 1
    assert [answer["status"] for answer in answers if "error" in answer] == [600] * 49
    logged_in = {(await login(http, url))["user_id"] for url in ab}
    assert len(logged_in) == 1


async def test_the_rate_limit_of_an_address_counts_its_calls_on_both_instances(
    pg_url: str, http: aiohttp.ClientSession
) -> None:
    with instances(pg_url, rate_limit_per_minute=6) as (a, b):
        wrong = {**USER, "password": "not the password"}
        answers = [(await call(http, url, "login", wrong))[1] for url in (a, b) * 4]
    assert [answer["status"] for answer in answers] == [603] * 6 + [829] * 2
