"""Core: construction, the choice of delivery mode, one HTTP session, closing."""

from __future__ import annotations

from typing import Any

import pytest

import corelogin
from corelogin.server import RunningServer
from tests.helpers import APP_KEY, PASSWORD, make_user


@pytest.mark.parametrize(
    "kwargs",
    [
        {"server": "127.0.0.1:10001"},
        {"server": None},
        {"key": ""},
        {"scope": ""},
        {"scope": 3},
        {"timeout": 0},
        {"timeout": True},
        {"retries": -1},
        {"deliver": "sometimes"},
    ],
)
def test_bad_configuration_raises_at_init(kwargs: dict[str, Any]) -> None:
    options: dict[str, Any] = {"server": "http://127.0.0.1:1", "key": "k", **kwargs}
    with pytest.raises((ValueError, TypeError)):
        corelogin.init(**options)


def test_outside_a_loop_the_default_is_frame_delivery() -> None:
    with corelogin.init("http://127.0.0.1:1", "k") as core:
        assert core.deliver == "frame"
    with pytest.raises(RuntimeError, match="running loop"):
        corelogin.init("http://127.0.0.1:1", "k", deliver="asyncio")


async def test_inside_a_loop_the_default_is_asyncio_delivery(core: corelogin.Core) -> None:
    assert core.deliver == "asyncio"


def test_repr_never_shows_the_key() -> None:
    with corelogin.init("http://127.0.0.1:1", "super-secret-app-key") as core:
        assert "super-secret-app-key" not in repr(core)
        assert "super-secret-app-key" not in repr(vars(core))


async def test_one_http_session_serves_every_call_and_close_closes_it(
    server: RunningServer,
) -> None:
    core = corelogin.init(server.url, APP_KEY)
    await make_user(core, "Donna")
    session = core._transport._session
    assert session is not None
    for _ in range(3):
        await core.users.login({"username": "Donna", "password": PASSWORD})
    assert core._transport._session is session

    await core.aclose()

    assert session.closed
    assert core.closed
    await core.aclose()  # idempotent


async def test_calls_after_close_get_817(server: RunningServer) -> None:
    async with corelogin.init(server.url, APP_KEY) as core:
        pass
    event = await core.users.login({"username": "Donna", "password": PASSWORD})
    assert event.status == 817
    assert event.error == "the core is closed"


async def test_two_cores_in_one_process_keep_separate_state(server: RunningServer) -> None:
    async with (
        corelogin.init(server.url, APP_KEY) as first,
        corelogin.init(server.url, APP_KEY) as second,
    ):
        await make_user(first, "Donna")
        await first.users.login({"username": "Donna", "password": PASSWORD})
        assert first.users.logged_in_user is not None
        assert second.users.logged_in_user is None


async def test_sync_close_inside_the_loop_warns_to_use_aclose(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    with corelogin.init(server.url, APP_KEY) as core:
        await make_user(core, "Donna")
    assert "aclose()" in caplog.text
    await core.aclose()  # waits for the background close
    assert core._transport._session is None


async def test_aclose_does_not_warn(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with corelogin.init(server.url, APP_KEY) as core:
        await make_user(core, "Donna")
    assert "aclose()" not in caplog.text
