"""Core: construction, the choice of delivery mode, one HTTP session, closing."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

import corelogin
from corelogin.server import RunningServer
from corelogin.wire import Status
from tests.helpers import APP_KEY, LOGIN, PASSWORD, UNDECIDABLE, Listener, make_user
from tests.netfaults import FaultServer


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


# -- a Core refuses another Core's requests ------------------------------------------------


@pytest.mark.parametrize("method", ["cancel", "wait"])
def test_another_cores_request_is_refused_and_left_alone(
    silent_server: FaultServer, method: str
) -> None:
    main = threading.get_ident()
    core_a = corelogin.init(silent_server.url, APP_KEY)
    core_b = corelogin.init(silent_server.url, APP_KEY)
    listener_b = Listener()
    try:
        request_b = core_b.users.login(LOGIN, listener_b)
        assert silent_server.wait_received(lambda r: len(r) == 1, 10)

        use_of_a: Callable[[], object] = (
            partial(core_a.cancel, request_b)
            if method == "cancel"
            else partial(core_a.wait, request_b, timeout=1)
        )
        with pytest.raises(ValueError, match=r"(?i)another core"):
            use_of_a()

        core_a.process_events()
        core_b.process_events()
        assert listener_b.events == []
        assert not request_b.done(), "still in flight"

        core_b.close()
        assert listener_b.statuses == [Status.CANCELLED]
        assert listener_b.threads == [main]
    finally:
        core_a.close()
        core_b.close()


# -- blocking inside the running loop says how to block ----------------------------------


async def test_result_inside_the_running_loop_suggests_frame_mode(nowhere: str) -> None:
    core = corelogin.init(nowhere, APP_KEY)
    try:
        assert core.deliver == "asyncio"
        request = core.users.login(UNDECIDABLE)
        with pytest.raises(RuntimeError, match=r"deliver=.frame."):
            request.result()
        assert (await asyncio.wait_for(request, 5)).status == Status.MISSING
    finally:
        await core.aclose()
