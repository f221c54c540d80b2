"""Frame mode's listener queue: a zero timeout still delivers, and misuse is pointed out."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable

import pytest

import corelogin
from corelogin.server import ServerThread
from corelogin.wire import Status
from tests.helpers import (
    APP_KEY,
    IO_THREAD,
    LOGIN,
    UNDECIDABLE,
    Listener,
)

pytestmark = pytest.mark.timeout(30)


# -- frame mode: a zero timeout still runs what is ready ----------------------------------


def test_result_with_zero_timeout_returns_an_event_already_decided(nowhere: str) -> None:
    listener = Listener()
    with corelogin.init(nowhere, APP_KEY) as core:
        request = core.users.login(UNDECIDABLE, listener)
        event = request.result(timeout=0)
        assert event.status == Status.MISSING
        assert listener.events == [event]


def test_wait_with_zero_timeout_is_true_for_an_event_already_decided(nowhere: str) -> None:
    listener = Listener()
    with corelogin.init(nowhere, APP_KEY) as core:
        request = core.users.login(UNDECIDABLE, listener)
        assert core.wait(request, timeout=0) is True
        assert listener.statuses == [Status.MISSING]


# -- warnings for listeners that frame mode never ran ------------------------------------


def corelogin_warnings(
    caplog: pytest.LogCaptureFixture, matches: Callable[[str], bool]
) -> list[logging.LogRecord]:
    return [
        record
        for record in list(caplog.records)
        if record.name.startswith("corelogin")
        and record.levelno == logging.WARNING
        and matches(record.getMessage())
    ]


@pytest.mark.timeout(30)
def test_frame_mode_warns_once_when_process_events_is_never_called(
    user_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="corelogin")

    def about_process_events(message: str) -> bool:
        return "process_events" in message

    core = corelogin.init(user_url, APP_KEY)
    try:
        made = time.monotonic()
        requests = [
            core.users.login({"username": "Donna", "password": "not the password"}),
            core.users.login(UNDECIDABLE),
            core.users.login(UNDECIDABLE),
        ]
        deadline = made + 8
        while not all(request.done() for request in requests) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert all(request.done() for request in requests), "three events are waiting"
        found: list[logging.LogRecord] = []
        while not found and time.monotonic() < deadline:
            time.sleep(0.05)
            found = corelogin_warnings(caplog, about_process_events)
        assert found, "a warning mentions process_events() within 8 s"
        assert time.monotonic() - made >= 2.5, "not at once: after about 5 s"
        time.sleep(1.5)
        assert len(corelogin_warnings(caplog, about_process_events)) == 1, "only one warning"
    finally:
        core.process_events()
        core.close()


def test_close_from_another_thread_warns_how_many_listeners_never_ran(
    nowhere: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="corelogin")

    def says_three(message: str) -> bool:
        return re.search(r"\b3\b", message) is not None

    core = corelogin.init(nowhere, APP_KEY)
    listeners = [Listener() for _ in range(3)]
    try:
        for listener in listeners:
            core.users.login(UNDECIDABLE, listener)
        closer = threading.Thread(target=core.close)
        closer.start()
        closer.join(10)
        assert not closer.is_alive()
        assert all(listener.events == [] for listener in listeners)

        deadline = time.monotonic() + 3
        found = corelogin_warnings(caplog, says_three)
        while not found and time.monotonic() < deadline:
            time.sleep(0.05)
            found = corelogin_warnings(caplog, says_three)
        assert found, "close() from another thread says 3 listeners were never run"
    finally:
        core.process_events()


# -- set_wakeup: a host loop is told when a listener is queued ------------------------------


class Wakeups:
    """A wakeup function that records the thread each call came from."""

    def __init__(self) -> None:
        self.threads: list[str] = []
        self.called = threading.Event()

    def __call__(self) -> None:
        self.threads.append(threading.current_thread().name)
        self.called.set()


def test_wakeup_is_called_from_the_io_thread_when_a_listener_is_queued(
    server_thread: ServerThread,
) -> None:
    wakeups, listener = Wakeups(), Listener()
    with corelogin.init(server_thread.url, APP_KEY) as core:
        core.set_wakeup(wakeups)
        core.users.login(LOGIN, listener)
        assert wakeups.called.wait(10)
        assert listener.events == []  # woken, not delivered: process_events() runs it
        assert core.process_events() == 1
        assert listener.statuses == [Status.INVALID_CREDENTIALS]
        assert wakeups.threads == [IO_THREAD]


def test_wakeup_set_while_listeners_wait_is_called_at_once(nowhere: str) -> None:
    wakeups = Wakeups()
    with corelogin.init(nowhere, APP_KEY) as core:
        core.users.login(UNDECIDABLE)  # decided here: queued at once, on this thread
        core.set_wakeup(wakeups)
        assert wakeups.threads == [threading.current_thread().name]
        core.set_wakeup(None)
        core.users.login(UNDECIDABLE)
        assert len(wakeups.threads) == 1  # removed: not called again
        assert core.process_events() == 2


def test_a_wakeup_that_raises_is_logged_and_the_listener_still_runs(
    nowhere: str, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise RuntimeError("the host loop has ended")

    listener = Listener()
    with corelogin.init(nowhere, APP_KEY) as core:
        core.set_wakeup(broken)
        core.users.login(UNDECIDABLE, listener)
        core.users.login(UNDECIDABLE, listener)
        assert core.process_events() == 2
    assert listener.statuses == [Status.MISSING] * 2
    assert len(corelogin_warnings(caplog, lambda m: "wakeup function raised" in m)) == 1  # once


def test_a_second_wakeup_is_refused_until_the_first_is_removed(nowhere: str) -> None:
    first, second = Wakeups(), Wakeups()
    with corelogin.init(nowhere, APP_KEY) as core:
        core.set_wakeup(first)
        core.set_wakeup(first)  # the same one again is fine
        with pytest.raises(RuntimeError, match="has a wakeup already"):
            core.set_wakeup(second)
        core.users.login(UNDECIDABLE)
        assert len(first.threads) == 1  # still the first's
        core.set_wakeup(None)
        core.set_wakeup(second)  # called at once: a listener waits
        assert len(second.threads) == 1
        assert core.process_events() == 1


@pytest.mark.parametrize("deliver", ["thread", "asyncio"])
async def test_set_wakeup_is_refused_outside_frame_mode(nowhere: str, deliver: str) -> None:
    async with corelogin.init(nowhere, APP_KEY, deliver=deliver) as core:  # type: ignore[arg-type]
        with pytest.raises(RuntimeError, match="set_wakeup\\(\\) is for frame mode"):
            core.set_wakeup(lambda: None)


def test_set_wakeup_refuses_what_is_not_callable(nowhere: str) -> None:
    with corelogin.init(nowhere, APP_KEY) as core, pytest.raises(TypeError, match="callable"):
        core.set_wakeup("process_events")  # type: ignore[arg-type]


# -- await in frame mode, on the thread that runs listeners --------------------------------


def test_await_in_an_apps_loop_returns_after_the_frame_mode_listener_ran(
    server_thread: ServerThread,
) -> None:
    """A Core made outside any loop (terminal IPython's sync cells), awaited later in a loop on
    the same thread (its top-level await): the listener has run when the await returns."""
    listener = Listener()
    with corelogin.init(server_thread.url, APP_KEY) as core:

        async def main() -> tuple[corelogin.Event, corelogin.Event]:
            failed = await core.users.login(LOGIN, listener)  # answered by the server
            missing = await core.users.login(UNDECIDABLE, listener)  # decided at once
            return failed, missing

        failed, missing = asyncio.run(main())
        assert listener.events == [failed, missing]
        assert listener.threads == [threading.get_ident()] * 2
        assert core.process_events() == 0  # nothing left queued
