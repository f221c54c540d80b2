"""Idle and absolute session expiry, judged by the server's clock: a test's own clock here, so
that lifetimes of a second or two are checked exactly and without sleeping."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import attrs
import pytest

import corelogin
from corelogin.server import ServerConfig, start_server
from tests.helpers import APP_KEY, PASSWORD, make_user


class Clock:
    """Unix seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def donna(server_config: ServerConfig, clock: Clock) -> AsyncIterator[corelogin.Core]:
    """A Core logged in as Donna on a server whose sessions live 1 s idle, 3 s in all."""
    config = attrs.evolve(server_config, session_idle_seconds=1, session_absolute_seconds=3)
    async with (
        await start_server(config, clock=clock) as running,
        corelogin.init(running.url, APP_KEY, session_store=None) as core,
    ):
        await make_user(core, "Donna")
        event = await core.users.login({"username": "Donna", "password": PASSWORD})
        assert event.error is None, event
        yield core


async def reads_own_record(core: corelogin.Core) -> int | None:
    assert core.users.logged_in_user is not None
    return (await core.users.get({"user_id": core.users.logged_in_user.user_id})).status


async def test_a_session_used_often_enough_stays_alive_until_its_absolute_end(
    donna: corelogin.Core, clock: Clock
) -> None:
    statuses = []
    for _ in range(5):  # every half second: never idle for a second
        clock.now += 0.5
        statuses.append(await reads_own_record(donna))
    assert statuses == [None, None, None, None, None]  # 2.5 s after the login

    clock.now += 0.75  # 3.25 s: past the absolute end, though used 0.75 s ago
    assert await reads_own_record(donna) == 609


async def test_a_session_idle_for_its_limit_ends(donna: corelogin.Core, clock: Clock) -> None:
    clock.now += 0.75
    assert await reads_own_record(donna) is None
    clock.now += 1.0  # idle exactly the limit since that use (within the absolute 3 s)
    assert await reads_own_record(donna) == 609


def test_lifetimes_of_one_second_are_accepted_and_zero_is_not() -> None:
    config = ServerConfig(app_key="k", session_idle_seconds=1, session_absolute_seconds=1)
    assert (config.session_idle_seconds, config.session_absolute_seconds) == (1, 1)
    for field in ("session_idle_seconds", "session_absolute_seconds"):
        with pytest.raises(ValueError, match=field):
            ServerConfig(app_key="k", **{field: 0})
