"""Exceptions raised by listeners (docs/delivery.md, "Exceptions in listeners"): reported, or,
for Ctrl-C and sys.exit() on the app's own thread, passed on; the Core survives either way."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

import corelogin
from corelogin import signals
from corelogin.wire import Status
from tests.helpers import (
    APP_KEY,
    LOGIN,
    UNDECIDABLE,
    Listener,
)

pytestmark = pytest.mark.timeout(30)


# -- BaseException raised by listeners ----------------------------------------------------


@pytest.mark.parametrize(
    ("params", "status"),
    [(UNDECIDABLE, Status.MISSING), (LOGIN, Status.INVALID_CREDENTIALS)],
    ids=["decided_at_once", "over_the_network"],
)
async def test_listener_raising_cancelled_error_is_reported_and_the_call_completes(
    core: corelogin.Core, params: dict[str, Any], status: int
) -> None:
    reported: list[tuple[Any, corelogin.Event, BaseException]] = []

    def receiver(sender: Any, event: corelogin.Event, exception: BaseException) -> None:
        reported.append((sender, event, exception))

    def listener(event: corelogin.Event) -> None:
        raise asyncio.CancelledError()

    disconnect = signals.subscribe(signals.listener_error, receiver, sender=core)
    try:
        request = core.users.login(params, listener)
        event = await asyncio.wait_for(request, 5)
    finally:
        disconnect()

    assert event.status == status
    assert request.done()
    assert len(reported) == 1, "the CancelledError is reported on listener_error"
    sender, reported_event, exception = reported[0]
    assert sender is core
    assert reported_event is event
    assert isinstance(exception, asyncio.CancelledError)


@pytest.mark.timeout(20)
def test_listener_calling_sys_exit_in_thread_mode_is_reported_and_the_core_goes_on(
    nowhere: str,
) -> None:
    reported: list[BaseException] = []

    def receiver(sender: Any, event: corelogin.Event, exception: BaseException) -> None:
        reported.append(exception)

    def exiting(event: corelogin.Event) -> None:
        sys.exit()

    core = corelogin.init(nowhere, APP_KEY, deliver="thread")
    disconnect = signals.subscribe(signals.listener_error, receiver, sender=core)
    try:
        first = core.users.login(UNDECIDABLE, exiting).result(timeout=5)
        assert first.status == Status.MISSING
        assert len(reported) == 1
        assert isinstance(reported[0], SystemExit)

        later = Listener()
        second = core.users.login(UNDECIDABLE, later).result(timeout=5)
        assert second.status == Status.MISSING
        assert later.events == [second]
    finally:
        disconnect()
        core.close()


@pytest.mark.parametrize("exception", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("via", ["process_events", "result"])
def test_frame_mode_listener_base_exception_is_reraised_on_the_creating_thread(
    nowhere: str, exception: type[BaseException], via: str
) -> None:
    main = threading.get_ident()
    ran: list[tuple[corelogin.Event, int]] = []

    def raising(event: corelogin.Event) -> None:
        ran.append((event, threading.get_ident()))
        raise exception()

    core = corelogin.init(nowhere, APP_KEY)
    try:
        request = core.users.login(UNDECIDABLE, raising)
        others = [Listener() for _ in range(2)]
        for listener in others:
            core.users.login(UNDECIDABLE, listener)

        run: Callable[[], object] = (
            core.process_events if via == "process_events" else partial(request.result, 5)
        )
        with pytest.raises(exception):
            run()

        assert len(ran) == 1
        assert ran[0][1] == main
        assert request.done()
        core.process_events()  # the other listeners still run
        assert all(listener.statuses == [Status.MISSING] for listener in others)
        assert all(listener.threads == [main] for listener in others)
        assert request.result(timeout=1) is ran[0][0]  # not run again, nothing re-raised
        assert core.wait(timeout=1) is True
        assert len(ran) == 1

        later = Listener()
        assert core.users.login(UNDECIDABLE, later).result(timeout=5).status == Status.MISSING
        assert later.statuses == [Status.MISSING]
    finally:
        core.close()
