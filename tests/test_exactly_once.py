"""Exactly once (DESIGN.md §2): every call gives its listener one Event, whatever happens."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st

import corelogin
from corelogin.server import ServerConfig, ServerThread
from corelogin.transport import Retry
from corelogin.wire import Status
from tests.helpers import APP_KEY, PASSWORD, server_config_for
from tests.netfaults import Behaviour, FaultServer, free_port

pytestmark = pytest.mark.timeout(120)

LOGIN = {"username": "Donna", "password": PASSWORD}
WRONG_PASSWORD = {"username": "Wrong", "password": "not the password"}


@pytest.fixture(scope="module")
def live_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real server for the module, with the users Donna and Wrong (both PASSWORD).

    Wrong only ever gets wrong passwords, so that Donna stays usable whatever the server
    later does about repeated failures.
    """
    db = tmp_path_factory.mktemp("exactly_once") / "corelogin.sqlite3"
    config = attrs.evolve(server_config_for(db), lockout_threshold=1_000_000)  # Wrong stays 603
    with ServerThread(config) as server:
        with corelogin.init(server.url, APP_KEY) as core:
            for name in ("Donna", "Wrong"):
                event = core.users.create({"username": name, "password": PASSWORD}).result(10)
                assert event.error is None, event
        yield server.url


class Listener:
    """Counts its calls; remembers each Event and the thread it ran on."""

    def __init__(self) -> None:
        self.events: list[corelogin.Event] = []
        self.threads: list[int] = []

    def __call__(self, event: corelogin.Event) -> None:
        self.events.append(event)
        self.threads.append(threading.get_ident())

    @property
    def status(self) -> int | None:
        [event] = self.events
        return event.status


def deliver_all(core: corelogin.Core, listeners: list[Listener]) -> None:
    """Wait for every call (running listeners on this thread), then check none is left over."""
    assert core.wait(timeout=30)
    assert core.process_events() == 0
    assert all(len(listener.events) == 1 for listener in listeners)


# -- one call, one outcome ------------------------------------------------------------------


def test_success_is_delivered_once(live_url: str) -> None:
    listener = Listener()
    with corelogin.init(live_url, APP_KEY) as core:
        request = core.users.login(LOGIN, listener)
        event = request.result(timeout=10)
        deliver_all(core, [listener])
    assert listener.events == [event]
    assert event.error is None
    assert event.status is None
    assert event.result.username == "Donna"


def test_wrong_password_is_delivered_once_as_603(live_url: str) -> None:
    listener = Listener()
    with corelogin.init(live_url, APP_KEY) as core:
        event = core.users.login(WRONG_PASSWORD, listener).result(timeout=10)
        deliver_all(core, [listener])
    assert listener.events == [event]
    assert event.status == Status.INVALID_CREDENTIALS
    assert event.error


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"username": "Donna"}, Status.MISSING),
        ({"password": PASSWORD}, Status.MISSING),
        ({"username": "", "password": PASSWORD}, Status.EMPTY),
        ({"username": 42, "password": PASSWORD}, Status.WRONG_TYPE),
        ({"username": "Donna", "email": "d@example.com", "password": PASSWORD}, Status.WRONG_TYPE),
        ({"username": "x" * 65, "password": PASSWORD}, Status.TOO_LONG),
        ({"username": "Donna", "password": "p" * 1025}, Status.TOO_LONG),
        ({"username": "Donna", "password": PASSWORD, "timeout": -1}, Status.WRONG_TYPE),
        (["not", "a", "mapping"], Status.WRONG_TYPE),
    ],
)
def test_validation_error_is_delivered_once_without_network(params: Any, status: int) -> None:
    listener = Listener()
    with FaultServer("drop") as fault, corelogin.init(fault.url, APP_KEY) as core:
        request = core.users.login(params, listener)
        assert request.done(), "known at once"
        assert listener.events == [], "but delivered like any other event, not from login()"
        deliver_all(core, [listener])
    assert listener.status == status
    assert listener.events[0].name == "login"
    assert fault.connections == 0


@pytest.mark.parametrize("retries", [0, 1, 3])
def test_connection_refused_is_815_after_the_retries(
    retries: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    backoffs: list[int] = []
    original = Retry.delay

    def counting_delay(self: Retry, attempt: int) -> float:
        backoffs.append(attempt)
        return original(self, attempt) / 10  # keep the test fast

    monkeypatch.setattr(Retry, "delay", counting_delay)
    listener = Listener()
    url = f"http://127.0.0.1:{free_port()}"
    with corelogin.init(url, APP_KEY, retries=retries) as core:
        event = core.users.login(LOGIN, listener).result(timeout=30)
        deliver_all(core, [listener])
    assert event.status == Status.NETWORK_ERROR
    assert listener.events == [event]
    assert backoffs == list(range(retries)), "one backoff before each retry"


def test_retry_reaches_a_server_that_came_up_during_the_backoff(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    port = free_port()
    config = ServerConfig(app_key=APP_KEY, db=f"sqlite:///{tmp_path / 'late.sqlite3'}", port=port)
    late = ServerThread(config)
    backoffs: list[int] = []

    def start_server_then_retry(self: Retry, attempt: int) -> float:
        backoffs.append(attempt)
        if attempt == 0:
            late.start()  # on the I/O thread, between the refused attempt and the retry
        return 0.0

    monkeypatch.setattr(Retry, "delay", start_server_then_retry)
    listener = Listener()
    try:
        with corelogin.init(f"http://127.0.0.1:{port}", APP_KEY, retries=2) as core:
            event = core.users.login(LOGIN, listener).result(timeout=30)
            deliver_all(core, [listener])
    finally:
        late.stop()
    assert backoffs == [0], "refused once, then the retry connected"
    # The late server has no users: its answer (not a network error) proves it was reached.
    assert event.status == Status.INVALID_CREDENTIALS
    assert listener.events == [event]


def test_connection_dropped_mid_request_is_815_and_not_retried() -> None:
    listener = Listener()
    with FaultServer("drop") as fault:
        with corelogin.init(fault.url, APP_KEY, retries=3) as core:
            event = core.users.login(LOGIN, listener).result(timeout=30)
            deliver_all(core, [listener])
        assert fault.connections == 1, "the server may have the request: never sent twice"
        [received] = fault.received
    assert event.status == Status.NETWORK_ERROR
    assert listener.events == [event]
    assert received.path == "/v1/users/login"
    assert received.body["username"] == "Donna"


def test_per_call_timeout_is_816_and_is_not_sent() -> None:
    listener = Listener()
    params = {**LOGIN, "timeout": 0.2}
    before = dict(params)
    with FaultServer("hang") as fault:
        with corelogin.init(fault.url, APP_KEY, timeout=30) as core:
            event = core.users.login(params, listener).result(timeout=20)
            deliver_all(core, [listener])
        [received] = fault.received
    assert event.status == Status.TIMED_OUT
    assert "0.2" in (event.error or "")
    assert listener.events == [event]
    assert "timeout" not in received.body
    assert received.body == {"username": "Donna", "password": PASSWORD, "scope": "default"}
    assert params == before, "params are never mutated"


@pytest.mark.parametrize("how", ["request.cancel", "core.cancel"])
def test_cancel_in_flight_is_817_once(how: str) -> None:
    listener = Listener()
    with FaultServer("hang") as fault, corelogin.init(fault.url, APP_KEY) as core:
        request = core.users.login(LOGIN, listener)
        assert fault.wait_received(lambda r: len(r) == 1, 10), "the call is in flight"

        cancelled = request.cancel() if how == "request.cancel" else core.cancel(request)

        assert cancelled is True
        assert request.done()
        event = request.result(timeout=10)
        assert request.cancel() is False
        assert core.cancel(request) is False
        deliver_all(core, [listener])
    assert event.status == Status.CANCELLED
    assert listener.events == [event]


def test_cancel_right_after_the_call_is_817_for_each() -> None:
    listeners = [Listener() for _ in range(20)]
    with FaultServer("hang") as fault, corelogin.init(fault.url, APP_KEY) as core:
        requests = [core.users.login(LOGIN, listener) for listener in listeners]
        cancelled = [request.cancel() for request in requests]
        deliver_all(core, listeners)
    assert cancelled == [True] * 20
    assert all(listener.status == Status.CANCELLED for listener in listeners)


def test_cancel_after_delivery_changes_nothing(live_url: str) -> None:
    listener = Listener()
    with corelogin.init(live_url, APP_KEY) as core:
        request = core.users.login(LOGIN, listener)
        event = request.result(timeout=10)
        assert request.cancel() is False
        assert core.cancel(request) is False
        assert request.result(timeout=1) is event
        deliver_all(core, [listener])
    assert listener.events == [event]
    assert event.error is None


@pytest.mark.parametrize("deliver", ["frame", "thread"])
def test_close_with_calls_in_flight_is_817_for_each(deliver: str) -> None:
    listeners = [Listener() for _ in range(5)]
    with FaultServer("hang") as fault:
        core = corelogin.init(fault.url, APP_KEY, deliver=deliver)  # type: ignore[arg-type]
        requests = [core.users.login(LOGIN, listener) for listener in listeners]
        assert fault.wait_received(lambda r: len(r) == 5, 10)

        core.close()

        # Delivered before close() returns: on this thread (frame) or on the I/O thread.
        assert all(len(listener.events) == 1 for listener in listeners)
        assert all(request.done() for request in requests)
        assert core.process_events() == 0
        core.close()
    for listener, request in zip(listeners, requests, strict=True):
        assert listener.status == Status.CANCELLED
        assert listener.events == [request.result(timeout=1)]


async def test_close_with_calls_in_flight_is_817_in_asyncio_mode() -> None:
    listeners = [Listener() for _ in range(3)]
    with FaultServer("hang") as fault:
        core = corelogin.init(fault.url, APP_KEY)
        requests = [core.users.login(LOGIN, listener) for listener in listeners]
        await core.aclose()
        events = [await request for request in requests]
    assert [event.status for event in events] == [Status.CANCELLED] * 3
    for listener, event in zip(listeners, events, strict=True):
        assert listener.events == [event]


def test_call_after_close_is_817(live_url: str) -> None:
    listener = Listener()
    core = corelogin.init(live_url, APP_KEY)
    core.close()
    request = core.users.login(LOGIN, listener)
    deliver_all(core, [listener])
    assert listener.status == Status.CANCELLED
    assert request.result(timeout=1) is listener.events[0]


def test_close_from_another_thread_with_calls_in_flight_loses_nothing() -> None:
    listeners = [Listener() for _ in range(5)]
    with FaultServer("hang") as fault:
        core = corelogin.init(fault.url, APP_KEY)
        for listener in listeners:
            core.users.login(LOGIN, listener)
        assert fault.wait_received(lambda r: len(r) == 5, 10)
        closer = threading.Thread(target=core.close)
        closer.start()
        closer.join(20)
        assert not closer.is_alive()
        assert all(listener.events == [] for listener in listeners), "not this thread's job"

        assert core.process_events() == 5  # the creating thread still gets them
    assert all(listener.status == Status.CANCELLED for listener in listeners)
    assert {t for listener in listeners for t in listener.threads} == {threading.get_ident()}


def race_close(url: str, threads: int = 4, calls: int = 20) -> tuple[list[Listener], list[Any]]:
    """Close a Core while ``threads`` threads make calls through it; return their listeners
    (after the creating thread has delivered everything) and what the calls raised."""
    core = corelogin.init(url, APP_KEY)
    core.users.login(LOGIN).cancel()  # the I/O thread is up
    lock = threading.Lock()
    listeners: list[Listener] = []
    raised: list[BaseException] = []
    go = threading.Barrier(threads + 1)

    def worker() -> None:
        go.wait()
        for _ in range(calls):
            listener = Listener()
            with lock:
                listeners.append(listener)
            try:
                core.users.login(LOGIN, listener)
            except BaseException as exc:
                raised.append(exc)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    go.wait()
    core.close()
    for thread in workers:
        thread.join(20)
    assert core.wait(timeout=20)
    return listeners, raised


def test_close_racing_calls_from_other_threads_loses_nothing() -> None:
    with FaultServer("hang") as fault:
        for _ in range(10):
            listeners, raised = race_close(fault.url)
            assert raised == [], "a call racing close() still returns a Request"
            assert len(listeners) == 80
            for listener in listeners:
                assert len(listener.events) == 1
                assert listener.status == Status.CANCELLED


# -- all of it at once ----------------------------------------------------------------------

# What a call is made to meet, and the status its listener must get when nothing interferes.
EXPECTED: dict[str, int | None] = {
    "success": None,
    "wrong_password": Status.INVALID_CREDENTIALS,
    "dropped": Status.NETWORK_ERROR,
    "timeout": Status.TIMED_OUT,
    "cancelled": Status.CANCELLED,
}
INVALID: dict[str, tuple[dict[str, Any], int]] = {
    "missing": ({"username": "Donna"}, Status.MISSING),
    "empty": ({"username": "", "password": PASSWORD}, Status.EMPTY),
    "wrong_type": ({"username": ["Donna"], "password": PASSWORD}, Status.WRONG_TYPE),
    "too_long": ({"username": "Donna", "password": "p" * 2000}, Status.TOO_LONG),
}
NETWORK_KINDS = sorted(EXPECTED)
KINDS = [*NETWORK_KINDS, *(f"invalid_{name}" for name in INVALID)]
TIMEOUT = 0.25  # per-call timeout of the "timeout" kind


def params_for(kind: str) -> dict[str, Any]:
    if kind.startswith("invalid_"):
        return INVALID[kind.removeprefix("invalid_")][0]
    network: dict[str, dict[str, Any]] = {
        "success": LOGIN,
        "wrong_password": WRONG_PASSWORD,
        "dropped": {"username": "drop", "password": PASSWORD},
        "timeout": {"username": "hang", "password": PASSWORD, "timeout": TIMEOUT},
        "cancelled": {"username": "hang", "password": PASSWORD},
        "victim": {"username": "victim", "password": PASSWORD},
    }
    return network[kind]


def route(body: dict[str, Any]) -> Behaviour:
    """The fault server's choice: the real server answers the calls of real users."""
    name = body.get("username")
    if name == "drop":
        return "drop"
    if name in ("hang", "victim"):
        return "hang"
    return "forward"


@attrs.define
class Call:
    kind: str
    after_kill: bool
    request: corelogin.Request
    listener: Listener
    cancel_won: bool | None = None

    def allowed(self, kill: bool, closed_early: bool) -> set[int | None]:
        """The statuses this call may end with, given what else happened in the batch."""
        if self.kind.startswith("invalid_"):
            return {INVALID[self.kind.removeprefix("invalid_")][1]}  # never touches the network
        if self.kind == "cancelled" and self.cancel_won:
            return {Status.CANCELLED}
        if self.kind == "victim":  # read by the server, which then died
            allowed: set[int | None] = {Status.NETWORK_ERROR}
        elif self.after_kill:  # nothing listens any more: refused, after the retry
            allowed = {Status.NETWORK_ERROR}
            if self.kind == "timeout":  # the retry's backoff may outlast the timeout
                allowed.add(Status.TIMED_OUT)
        else:
            allowed = {EXPECTED[self.kind]}
            if kill:  # it may still have been on the wire when the server died
                allowed.add(Status.NETWORK_ERROR)
        if closed_early:  # close() cancels what is still in flight
            allowed.add(Status.CANCELLED)
        return allowed


@pytest.mark.usefixtures("tiny_switch_interval")
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=8),
    kill_at=st.none() | st.integers(min_value=0, max_value=8),
    # one in four closes early, from this thread or from another one racing the last calls
    close_early=st.sampled_from([None, None, None, "this thread", "another thread"]),
    cancel_via_core=st.booleans(),
    deliver=st.sampled_from(["frame", "thread"]),
)
def test_every_call_is_delivered_exactly_once_whatever_happens(
    live_url: str,
    kinds: list[str],
    kill_at: int | None,
    close_early: str | None,
    cancel_via_core: bool,
    deliver: Literal["frame", "thread"],
) -> None:
    """A batch of calls through one frame- or thread-mode Core meets every outcome at once: success,
    server errors, validation errors, dropped connections, timeouts, cancellation, the server
    dying mid-request (then refusing connections), and close() with calls still in flight, from
    this thread or racing the calls from another; threads switch as often as CPython allows."""
    main = threading.get_ident()
    kill = kill_at is not None
    split = len(kinds) if kill_at is None else min(kill_at, len(kinds))
    calls: list[Call] = []
    with FaultServer(route, upstream=live_url) as fault:
        core = corelogin.init(fault.url, APP_KEY, retries=1, deliver=deliver)
        try:

            def call(kind: str, after_kill: bool) -> Call:
                listener = Listener()
                request = core.users.login(params_for(kind), listener)
                made = Call(kind, after_kill, request, listener)
                if kind == "cancelled":
                    made.cancel_won = core.cancel(request) if cancel_via_core else request.cancel()
                calls.append(made)
                return made

            for kind in kinds[:split]:
                call(kind, after_kill=False)
            if kill:
                call("victim", after_kill=False)
                # The server dies while it holds the victim's request (and maybe others).
                assert fault.wait_received(
                    lambda r: any(x.body.get("username") == "victim" for x in r), 10
                )
                fault.kill()
            closer = threading.Thread(target=core.close)
            if close_early == "another thread":
                closer.start()  # races the calls below
            for kind in kinds[split:]:
                call(kind, after_kill=True)

            if close_early == "this thread":
                core.close()
            elif close_early == "another thread":
                closer.join(20)
                assert not closer.is_alive()
            assert core.wait(timeout=30)
        finally:
            core.close()
        assert core.process_events() == 0

    for made in calls:
        events = made.listener.events
        assert len(events) == 1, f"{made.kind}: delivered {len(events)} times"
        [event] = events
        assert event is made.request.result(timeout=1)
        if deliver == "frame":
            assert made.listener.threads == [main]
        elif made.listener.threads == [main]:  # thread mode, no I/O thread left to run it on
            assert close_early == "another thread", made.kind
            assert event.status == Status.CANCELLED or made.kind.startswith("invalid_")
        assert event.name == "login"
        assert event.status in made.allowed(kill, close_early is not None), (made.kind, event)
        when = (
            "after kill"
            if made.after_kill
            else f"closed by {close_early}"
            if close_early
            else "normal"
        )
        hypothesis_event(f"{made.kind} ({when}) -> {event.status}")  # --hypothesis-show-statistics
        if event.status is None:
            assert event.result.username == "Donna"
        if made.kind == "cancelled" and made.cancel_won:
            assert event.status == Status.CANCELLED
        elif made.kind == "cancelled" and close_early is None:  # the answer came first
            assert event.status != Status.CANCELLED
    if deliver == "thread":  # every listener on the one I/O thread (or, after close, right here)
        assert len({ident for made in calls for ident in made.listener.threads} - {main}) <= 1


# The session calls of issue 10, and what each may end with (besides 817 when cancelled or
# closed): restore and is_valid_login may be decided without the network.
SESSION_CALLS: dict[str, set[int | None]] = {
    "login_stay": {None},
    "restore": {None, Status.MISSING, Status.SESSION_INVALID},
    "is_valid_login": {None},
    "logout": {None},
    "login_with_auth_token": {Status.CODE_INVALID},
}


@pytest.mark.usefixtures("tiny_switch_interval")
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    calls=st.lists(
        st.tuples(st.sampled_from(sorted(SESSION_CALLS)), st.booleans()), min_size=1, max_size=8
    ),
    close_early=st.booleans(),
    deliver=st.sampled_from(["frame", "thread"]),
)
def test_the_session_calls_are_delivered_exactly_once(
    live_url: str,
    calls: list[tuple[str, bool]],
    close_early: bool,
    deliver: Literal["frame", "thread"],
) -> None:
    """Logins that stay, restores, validity checks, logouts and auth-token logins, some decided
    at once, some cancelled, some cut short by close(): one event each, whatever the mix."""
    core = corelogin.init(
        live_url, APP_KEY, deliver=deliver, session_store=corelogin.MemorySessionStore()
    )
    made: list[tuple[str, Listener, corelogin.Request]] = []
    try:
        for name, cancel in calls:
            listener = Listener()
            if name == "login_stay":
                request = core.users.login({**LOGIN, "stay_logged_in": True}, listener)
            elif name == "login_with_auth_token":
                request = core.users.login_with_auth_token({"auth_token": "x" * 43}, listener)
            else:
                request = getattr(core.users, name)(listener)
            if cancel:
                request.cancel()
            made.append((name, listener, request))
        if close_early:
            core.close()
        assert core.wait(timeout=30)
    finally:
        core.close()
    for name, listener, request in made:
        assert len(listener.events) == 1, f"{name}: delivered {len(listener.events)} times"
        [event] = listener.events
        assert event is request.result(timeout=1)
        assert event.name == ("login" if name == "login_stay" else name)
        assert event.status in SESSION_CALLS[name] | {Status.CANCELLED}, (name, event)
