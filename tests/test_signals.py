"""Signals (DESIGN.md §2): sent by the Core with event=, where listeners run, after the state
changed, each receiver isolated; and blinker's weak-reference rule, documented by test."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from blinker import NamedSignal

import corelogin
from corelogin import signals
from corelogin.server import ServerThread
from corelogin.wire import Status
from tests.helpers import APP_KEY, PASSWORD, make_user

pytestmark = pytest.mark.timeout(60)

LOGIN = {"username": "Donna", "password": PASSWORD}
WRONG = {"username": "Donna", "password": "not the password"}


class Receiver:
    """A signal receiver that records what it got, where, and what the Core looked like."""

    def __init__(self, core: corelogin.Core | None = None) -> None:
        self.core = core
        self.calls: list[dict[str, Any]] = []

    def __call__(self, sender: Any, **kwargs: Any) -> None:
        self.calls.append(
            {
                "sender": sender,
                "thread": threading.current_thread().name,
                "ident": threading.get_ident(),
                "logged_in_user": None if self.core is None else self.core.users.logged_in_user,
                **kwargs,
            }
        )


@pytest.fixture
def connect() -> Iterator[Callable[[NamedSignal, Callable[..., Any], Any], None]]:
    """``connect(signal, receiver, sender)``: a strong connection, undone after the test."""
    undo: list[Callable[[], None]] = []

    def do(signal: NamedSignal, receiver: Callable[..., Any], sender: Any) -> None:
        undo.append(signals.subscribe(signal, receiver, sender=sender))

    yield do
    for disconnect in undo:
        disconnect()


Connect = Callable[[NamedSignal, Callable[..., Any], Any], None]


@pytest.fixture
def user_url(server_thread: ServerThread) -> str:
    with corelogin.init(server_thread.url, APP_KEY) as core:
        event = core.users.create({"username": "Donna", "password": PASSWORD}).result(10)
    assert event.error is None, event
    return server_thread.url


# -- what is sent, by whom, where and when --------------------------------------------------


@pytest.mark.parametrize("deliver", ["frame", "thread"])
def test_login_signal_is_sent_after_the_user_is_logged_in(
    user_url: str, deliver: str, connect: Connect
) -> None:
    listened: list[tuple[corelogin.Event, str]] = []
    with corelogin.init(user_url, APP_KEY, deliver=deliver) as core:  # type: ignore[arg-type]
        receiver = Receiver(core)
        connect(signals.login, receiver, core)

        def listener(event: corelogin.Event) -> None:
            listened.append((event, threading.current_thread().name))

        event = core.users.login(LOGIN, listener).result(timeout=10)

    assert event.error is None, event
    [call] = receiver.calls
    assert call["sender"] is core
    assert call["event"] is event
    assert call["logged_in_user"] is event.result, "state changed before the signal"
    [(_, listener_thread)] = listened
    assert call["thread"] == listener_thread, "signals run where listeners run"
    expected = threading.current_thread().name if deliver == "frame" else "corelogin-io"
    assert call["thread"] == expected


def test_login_signal_is_sent_only_for_its_own_core(user_url: str, connect: Connect) -> None:
    with (
        corelogin.init(user_url, APP_KEY) as core,
        corelogin.init(user_url, APP_KEY) as other,
    ):
        receiver = Receiver()
        connect(signals.login, receiver, core)
        assert other.users.login(LOGIN).result(timeout=10).error is None
        assert receiver.calls == []
        assert core.users.login(LOGIN).result(timeout=10).error is None
    assert [call["sender"] for call in receiver.calls] == [core]


def test_login_failed_signal_is_sent_for_a_wrong_password(user_url: str, connect: Connect) -> None:
    with corelogin.init(user_url, APP_KEY) as core:
        failed, succeeded = Receiver(core), Receiver(core)
        connect(signals.login_failed, failed, core)
        connect(signals.login, succeeded, core)

        event = core.users.login(WRONG, None).result(timeout=10)

    assert event.status == Status.INVALID_CREDENTIALS
    [call] = failed.calls
    assert call["sender"] is core
    assert call["event"] is event
    assert call["logged_in_user"] is None
    assert call["ident"] == threading.get_ident()
    assert succeeded.calls == []


def test_login_failed_signal_is_sent_for_a_validation_error(
    user_url: str, connect: Connect
) -> None:
    with corelogin.init(user_url, APP_KEY) as core:
        failed = Receiver()
        connect(signals.login_failed, failed, core)
        event = core.users.login({"username": "Donna"}).result(timeout=10)
    assert event.status == Status.MISSING
    assert [call["event"] for call in failed.calls] == [event]


def test_user_created_signal_carries_the_new_user(user_url: str, connect: Connect) -> None:
    with corelogin.init(user_url, APP_KEY) as core:
        created = Receiver()
        connect(signals.user_created, created, core)
        event = core.users.create({"username": "Tina", "password": PASSWORD}).result(timeout=10)
        refused = core.users.create({"username": "Tina", "password": PASSWORD}).result(10)

    assert event.error is None, event
    assert refused.status == Status.USER_EXISTS
    [call] = created.calls  # not for the refused one
    assert call["sender"] is core
    assert call["event"] is event
    assert call["event"].result.username == "Tina"
    assert call["ident"] == threading.get_ident()


def test_signal_is_sent_after_the_listener_ran(user_url: str, connect: Connect) -> None:
    order: list[str] = []
    with corelogin.init(user_url, APP_KEY) as core:
        connect(signals.login, lambda sender, **kw: order.append("signal"), core)
        core.users.login(LOGIN, lambda event: order.append("listener")).result(timeout=10)
    assert order == ["listener", "signal"]


# -- errors in app code ---------------------------------------------------------------------


def test_raising_listener_is_logged_and_reported_and_the_next_event_flows(
    user_url: str, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    boom = ValueError("boom")
    errors, logins = Receiver(), Receiver()
    later: list[corelogin.Event] = []

    def bad_listener(event: corelogin.Event) -> None:
        raise boom

    with corelogin.init(user_url, APP_KEY) as core:
        connect(signals.listener_error, errors, core)
        connect(signals.login, logins, core)
        with caplog.at_level(logging.ERROR, logger="corelogin"):
            first = core.users.login(LOGIN, bad_listener).result(timeout=10)
            second = core.users.login(LOGIN, later.append).result(timeout=10)

    assert first.error is None
    [error] = errors.calls
    assert error["sender"] is core
    assert error["exception"] is boom
    assert error["event"] is first
    assert error["ident"] == threading.get_ident()
    records = [r for r in caplog.records if r.name == "corelogin" and r.exc_info]
    assert len(records) == 1
    assert records[0].levelno == logging.ERROR
    assert records[0].exc_info is not None
    assert records[0].exc_info[1] is boom
    assert "listener" in records[0].getMessage()
    # The call's own signal still went out, and the SDK keeps going.
    assert [call["event"] for call in logins.calls] == [first, second]
    assert later == [second]


def test_raising_receiver_does_not_stop_the_other_receivers(
    user_url: str, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    oops = RuntimeError("receiver failed")
    good, errors = Receiver(), Receiver()

    def bad(sender: Any, **kwargs: Any) -> None:
        raise oops

    with corelogin.init(user_url, APP_KEY) as core:
        connect(signals.login, bad, core)
        connect(signals.login, good, core)
        connect(signals.listener_error, errors, core)
        with caplog.at_level(logging.ERROR, logger="corelogin"):
            event = core.users.login(LOGIN).result(timeout=10)

    assert [call["event"] for call in good.calls] == [event]
    [error] = errors.calls
    assert error["exception"] is oops
    assert error["event"] is event
    assert any(r.exc_info and r.exc_info[1] is oops for r in caplog.records)
    assert any("receiver of login" in r.getMessage() for r in caplog.records)


def test_raising_listener_error_receiver_is_logged_not_resent(
    user_url: str, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[BaseException] = []

    def bad_error_receiver(sender: Any, *, exception: BaseException, **kwargs: Any) -> None:
        calls.append(exception)
        raise KeyError("again")

    def bad_listener(event: corelogin.Event) -> None:
        raise ValueError("first")

    with corelogin.init(user_url, APP_KEY) as core:
        connect(signals.listener_error, bad_error_receiver, core)
        with caplog.at_level(logging.ERROR, logger="corelogin"):
            event = core.users.login(LOGIN, bad_listener).result(timeout=10)
        assert core.users.login(LOGIN).result(timeout=10).error is None

    assert event.error is None
    assert [type(exc) for exc in calls] == [ValueError], "no loop on listener_error"
    assert any("listener_error" in r.getMessage() for r in caplog.records)


# -- asyncio mode ---------------------------------------------------------------------------


async def test_async_receivers_run_on_the_loop_in_asyncio_mode(
    core: corelogin.Core, connect: Connect
) -> None:
    await make_user(core)
    loop = asyncio.get_running_loop()
    got: asyncio.Queue[tuple[str, Any, asyncio.AbstractEventLoop]] = asyncio.Queue()

    async def on_login(sender: Any, **kwargs: Any) -> None:
        await asyncio.sleep(0)
        await got.put(("login", kwargs["event"], asyncio.get_running_loop()))

    async def on_error(sender: Any, **kwargs: Any) -> None:
        await got.put(("error", kwargs["exception"], asyncio.get_running_loop()))

    async def failing(sender: Any, **kwargs: Any) -> None:
        await asyncio.sleep(0)
        raise LookupError("async receiver failed")

    connect(signals.login, on_login, core)
    connect(signals.login, failing, core)
    connect(signals.listener_error, on_error, core)

    event = await core.users.login(LOGIN)
    first = await asyncio.wait_for(got.get(), 10)
    second = await asyncio.wait_for(got.get(), 10)

    by_kind = {first[0]: first, second[0]: second}
    assert by_kind["login"][1] is event
    assert isinstance(by_kind["error"][1], LookupError)
    assert by_kind["login"][2] is loop
    assert by_kind["error"][2] is loop


async def test_sync_receiver_in_asyncio_mode_sees_the_logged_in_user(
    core: corelogin.Core, connect: Connect
) -> None:
    await make_user(core)
    receiver = Receiver(core)
    connect(signals.login, receiver, core)
    event = await core.users.login(LOGIN)
    [call] = receiver.calls
    assert call["event"] is event
    assert call["logged_in_user"] is event.result
    assert call["ident"] == threading.get_ident()


# -- blinker's weak references --------------------------------------------------------------


def test_subscribe_keeps_a_lambda_alive(user_url: str) -> None:
    seen: list[corelogin.Event] = []
    with corelogin.init(user_url, APP_KEY) as core:
        receiver = lambda sender, **kw: seen.append(kw["event"])  # noqa: E731
        alive = weakref.ref(receiver)
        signals.subscribe(signals.login, receiver, sender=core)  # disconnect() not kept either
        del receiver
        gc.collect()
        try:
            assert alive() is not None, "held by the signal itself"
            event = core.users.login(LOGIN).result(timeout=10)
        finally:
            kept = alive()
            if kept is not None:
                signals.login.disconnect(kept, sender=core)
    assert seen == [event]


def test_subscribe_returns_a_disconnect_function(user_url: str) -> None:
    seen: list[corelogin.Event] = []
    with corelogin.init(user_url, APP_KEY) as core:
        disconnect = signals.subscribe(
            signals.login, lambda sender, **kw: seen.append(kw["event"]), sender=core
        )
        try:
            event = core.users.login(LOGIN).result(timeout=10)
        finally:
            disconnect()
        core.users.login(LOGIN).result(timeout=10)
    assert seen == [event], "nothing after disconnect()"


def test_plain_connect_of_a_lambda_is_dropped_by_blinker(user_url: str) -> None:
    """blinker holds receivers weakly: a lambda nobody else holds is gone at once.

    Keep a reference to the receiver, connect with ``weak=False``, or use `signals.subscribe`.
    """
    seen: list[corelogin.Event] = []
    delivered: list[corelogin.Event] = []
    with corelogin.init(user_url, APP_KEY) as core:
        signals.login.connect(lambda sender, **kw: seen.append(kw["event"]), sender=core)
        gc.collect()
        event = core.users.login(LOGIN, delivered.append).result(timeout=10)
    assert delivered == [event], "the login did happen"
    assert seen == [], "but the weakly held lambda was already gone"


def test_plain_connect_of_a_kept_function_works(user_url: str) -> None:
    seen: list[corelogin.Event] = []

    def receiver(sender: Any, **kw: Any) -> None:  # held by this frame for the whole test
        seen.append(kw["event"])

    with corelogin.init(user_url, APP_KEY) as core:
        signals.login.connect(receiver, sender=core)
        try:
            event = core.users.login(LOGIN).result(timeout=10)
        finally:
            signals.login.disconnect(receiver, sender=core)
    assert seen == [event]
