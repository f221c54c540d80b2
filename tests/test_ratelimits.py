"""Rate limits per client address and call kind (829 with Retry-After) against the real server,
through the SDK and as raw HTTP; and the limiter on its own, with a clock of the test's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest

import corelogin
from corelogin.server import RunningServer, ServerConfig, start_server
from corelogin.server.context import RATE_LIMITS
from corelogin.server.limits import LocalHits
from corelogin.server.ratelimits import KINDS, RateLimits
from corelogin.server.store import open_store
from corelogin.wire import APP_KEY_HEADER, PATHS, ApiError
from tests.helpers import APP_KEY, PASSWORD, make_user, server_config_for

TOO_MANY = 829
LOGIN = {"username": "Donna", "password": PASSWORD}


@pytest.fixture
def server_config(tmp_path: Path) -> ServerConfig:
    return attrs.evolve(server_config_for(tmp_path / "corelogin.sqlite3"), rate_limit_per_minute=5)


async def raw_login(
    server: RunningServer, local_address: str = "127.0.0.1"
) -> tuple[int, dict[str, Any], str | None]:
    """A login as raw HTTP from ``local_address`` (any of 127/8 reaches the server): the HTTP
    status, the JSON answer and the Retry-After header."""
    connector = aiohttp.TCPConnector(local_addr=(local_address, 0))
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        http.post(
            server.url + PATHS["login"],
            json={"scope": "default", **LOGIN},
            headers={APP_KEY_HEADER: APP_KEY},
        ) as response,
    ):
        return response.status, await response.json(), response.headers.get("Retry-After")


async def test_the_sixth_login_from_one_address_gets_829_with_retry_after(
    core: corelogin.Core, server: RunningServer
) -> None:
    await make_user(core, "Donna")
    for _ in range(5):
        event = await core.users.login(LOGIN)
        assert event.error is None, event

    sixth = await core.users.login(LOGIN)
    http_status, answer, retry_after = await raw_login(server)

    assert sixth.status == TOO_MANY
    assert sixth.result is None
    assert "too many logins" in sixth.error
    assert http_status == 429
    assert answer["status"] == TOO_MANY
    assert retry_after is not None
    assert 1 <= int(retry_after) <= 60


async def test_the_sdk_does_not_send_a_refused_call_again(
    core: corelogin.Core, server: RunningServer
) -> None:
    await make_user(core, "Donna")
    for _ in range(5):
        await core.users.login(LOGIN)
    limits = server.app[RATE_LIMITS]
    assert limits.refused["login"] == 0

    event = await core.users.login(LOGIN)  # any retry would come before the event

    assert event.status == TOO_MANY
    assert limits.refused["login"] == 1  # one request refused: it was not sent again
    # The listener learns when to try again: the server's Retry-After.
    assert event.retry_after is not None
    assert 1 <= event.retry_after <= 60


async def test_another_address_has_its_own_budget(
    core: corelogin.Core, server: RunningServer
) -> None:
    await make_user(core, "Donna")
    for _ in range(5):
        assert (await raw_login(server, "127.0.0.1"))[0] == 200
    assert (await raw_login(server, "127.0.0.1"))[0] == 429

    http_status, answer, retry_after = await raw_login(server, "127.0.0.2")
    assert http_status == 200, answer
    assert retry_after is None


async def test_each_kind_has_its_own_budget(core: corelogin.Core) -> None:
    await make_user(core, "Donna")  # one create
    for _ in range(5):
        await core.users.login(LOGIN)
    assert (await core.users.login(LOGIN)).status == TOO_MANY

    for name in ("Tina", "Ann", "Bob", "Eve"):  # creates 2 to 5: their own budget
        await make_user(core, name)
    assert (await core.users.create({"username": "Zed", "password": PASSWORD})).status == TOO_MANY


async def test_invalid_calls_and_wrong_passwords_count_as_calls(core: corelogin.Core) -> None:
    await make_user(core, "Donna")
    statuses = [
        (await core.users.login({"username": "Donna", "password": "not it"})).status
        for _ in range(6)
    ]
    assert statuses == [603] * 5 + [TOO_MANY]


async def test_zero_turns_the_limits_off(server_config: ServerConfig) -> None:
    config = attrs.evolve(server_config, rate_limit_per_minute=0)
    async with await start_server(config) as server, corelogin.init(server.url, APP_KEY) as core:
        await make_user(core, "Donna")
        for name in ("A1", "A2", "A3", "A4", "A5", "A6"):
            await make_user(core, name)
        events = [await core.users.login(LOGIN) for _ in range(12)]
    assert [e.error for e in events] == [None] * 12
    assert server.app[RATE_LIMITS].refused == {}


# -- the limiter on its own -------------------------------------------------------------------


async def test_the_limit_holds_for_one_minute_from_the_first_call() -> None:
    limits, hits = RateLimits(2), LocalHits()
    await limits.hit(hits, "login", "a", now=100.0)
    await limits.hit(hits, "login", "a", now=130.0)
    with pytest.raises(ApiError) as refused:
        await limits.hit(hits, "login", "a", now=150.5)
    assert refused.value.status == TOO_MANY
    assert refused.value.retry_after == 10  # the window of the first call ends at 160
    await limits.hit(hits, "login", "a", now=160.0)
    assert limits.refused["login"] == 1


async def test_kinds_and_addresses_are_counted_apart() -> None:
    limits, hits = RateLimits(1), LocalHits()
    for kind in KINDS:
        await limits.hit(hits, kind, "a", now=0.0)
        await limits.hit(hits, kind, "b", now=0.0)
        with pytest.raises(ApiError):
            await limits.hit(hits, kind, "a", now=1.0)
    assert limits.refused == dict.fromkeys(KINDS, 1)
    assert set(KINDS) == {"login", "create", "resend_confirmation", "send_password_reset"}


async def test_an_unknown_kind_is_a_programming_error_even_when_off() -> None:
    for per_minute in (0, 5):
        with pytest.raises(KeyError):
            await RateLimits(per_minute).hit(LocalHits(), "logni", "a")


async def test_a_store_counts_alike_in_memory_and_in_postgresql(pg_url: str) -> None:
    """The same hits give the same answers from LocalHits (SQLite) and the PostgreSQL table."""
    store = open_store(pg_url)
    await store.open()
    try:
        answers = []
        for counter in (LocalHits(), store):
            answers.append(
                [
                    await counter.count_hit(key, 60, now)
                    for key, now in (("a", 100.0), ("a", 130.0), ("b", 131.0), ("a", 160.0))
                ]
            )
    finally:
        await store.close()
    assert answers[0] == answers[1] == [(100.0, 1), (100.0, 2), (131.0, 1), (160.0, 1)]
