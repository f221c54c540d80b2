"""Closing (docs/delivery.md, "Closing, and the rules at the edges"): from any thread, any
number of times, racing calls, around loops that end, and Cores nobody closed."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
import warnings
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import corelogin
from corelogin.server import ServerThread
from corelogin.wire import Status
from tests.helpers import (
    APP_KEY,
    IO_THREAD,
    LOGIN,
    PASSWORD,
    UNDECIDABLE,
    Listener,
    collect_garbage,
    io_threads,
    unclosed_messages,
)
from tests.netfaults import FaultServer

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parent.parent


# -- thread mode: calls from 16 threads racing close() ----------------------------------


def race_thread_mode_close(
    url: str, threads_n: int
) -> tuple[corelogin.Core, list[tuple[corelogin.Request, Listener]], list[BaseException]]:
    """``threads_n`` threads call login() through a new thread-mode Core (whose I/O thread the
    first of those calls starts) while this thread closes it, and a few times more after that;
    returns the Core, the calls made and what login() raised."""
    core = corelogin.init(url, APP_KEY, deliver="thread")
    lock = threading.Lock()
    made: list[tuple[corelogin.Request, Listener]] = []
    raised: list[BaseException] = []
    go = threading.Barrier(threads_n + 1, timeout=20)
    called = threading.Event()  # a first call was made
    closed = threading.Event()

    def worker() -> None:
        go.wait()
        after_close = 0
        for _ in range(2000):
            listener = Listener()
            try:
                request = core.users.login(UNDECIDABLE, listener)
            except BaseException as exc:
                with lock:
                    raised.append(exc)
            else:
                with lock:
                    made.append((request, listener))
            called.set()
            if closed.is_set():
                after_close += 1
                if after_close >= 5:
                    return

    workers = [threading.Thread(target=worker) for _ in range(threads_n)]
    for thread in workers:
        thread.start()
    go.wait()
    try:
        assert called.wait(10)
        core.close()  # while the I/O thread those calls started is busy delivering
    finally:
        closed.set()
        for thread in workers:
            thread.join(20)
    assert not any(thread.is_alive() for thread in workers)
    return core, made, raised


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("tiny_switch_interval")
def test_thread_mode_calls_racing_close_never_raise_and_each_listener_runs_once(
    nowhere: str,
) -> None:
    for iteration in range(60):
        core, made, raised = race_thread_mode_close(nowhere, threads_n=16)

        assert raised == [], f"iteration {iteration}: login() raised {raised[:3]!r}"
        assert core.wait(timeout=5) is True, f"iteration {iteration}: a listener never ran"
        for request, listener in made:
            assert len(listener.events) == 1, f"iteration {iteration}: {listener.statuses}"
            assert request.result(timeout=5) is listener.events[0]
            assert listener.events[0].status in (Status.MISSING, Status.CANCELLED)


# -- frame mode: close() on the creating thread after another thread closed ---------------


def test_close_on_creating_thread_delivers_after_another_thread_closed(
    silent_server: FaultServer,
) -> None:
    main = threading.get_ident()
    listeners = [Listener() for _ in range(5)]
    core = corelogin.init(silent_server.url, APP_KEY)
    try:
        requests = [core.users.login(LOGIN, listener) for listener in listeners]
        assert silent_server.wait_received(lambda r: len(r) == 5, 10), "5 calls in flight"
        closer = threading.Thread(target=core.close)
        closer.start()
        closer.join(20)
        assert not closer.is_alive()

        core.close()  # on the creating thread: the last listeners run before it returns

        assert [listener.statuses for listener in listeners] == [[Status.CANCELLED]] * 5
        assert all(listener.threads == [main] for listener in listeners)
        assert all(request.done() for request in requests)
    finally:
        core.process_events()


# -- asyncio mode: aclose() lets an async listener of a decided call finish ---------------


async def test_aclose_waits_for_the_async_listener_of_a_call_decided_at_once(
    core: corelogin.Core,
) -> None:
    finished: list[corelogin.Event] = []

    async def listener(event: corelogin.Event) -> None:
        await asyncio.sleep(0)
        finished.append(event)

    request = core.users.login(UNDECIDABLE, listener)
    await core.aclose()

    assert len(finished) == 1, "the async listener has run to completion when aclose() returns"
    assert finished[0].status == Status.MISSING
    assert finished[0] is await asyncio.wait_for(request, 5)


async def test_aclose_waits_for_the_async_listener_with_a_core_made_in_the_test(
    nowhere: str,
) -> None:
    core = corelogin.init(nowhere, APP_KEY)
    assert core.deliver == "asyncio"
    finished: list[corelogin.Event] = []

    async def listener(event: corelogin.Event) -> None:
        await asyncio.sleep(0)
        finished.append(event)

    core.users.login(UNDECIDABLE, listener)
    await core.aclose()

    assert [event.status for event in finished] == [Status.MISSING]


# -- asyncio mode: a call after the Core's loop has ended ----------------------------------


def test_call_after_aclose_and_the_loop_ended_gives_817_before_returning(
    server_thread: ServerThread,
) -> None:
    async def make_and_aclose() -> corelogin.Core:
        core = corelogin.init(server_thread.url, APP_KEY)
        assert core.deliver == "asyncio"
        event = await core.users.login(LOGIN)  # a real call: Donna does not exist here
        assert event.status == Status.INVALID_CREDENTIALS, event
        await core.aclose()
        return core

    core = asyncio.run(make_and_aclose())
    listener = Listener()

    request = core.users.login(LOGIN, listener)  # must not raise

    assert listener.statuses == [Status.CANCELLED], "called before login() returned"
    assert listener.threads == [threading.get_ident()]
    assert request.done()
    assert request.result(timeout=1) is listener.events[0]


def test_call_after_the_loop_of_an_unclosed_core_ended_gives_817(
    server_thread: ServerThread,
) -> None:
    async def make() -> corelogin.Core:
        return corelogin.init(server_thread.url, APP_KEY)

    core = asyncio.run(make())
    assert core.deliver == "asyncio"
    listener = Listener()

    request = core.users.login(LOGIN, listener)  # must not raise

    assert listener.statuses == [Status.CANCELLED], "called before login() returned"
    assert request.done()


# -- asyncio mode: sync close() of a Core whose loop no longer runs ------------------------


@pytest.mark.timeout(30)
def test_sync_close_after_run_until_complete_is_quick_and_closes_the_session(
    server_thread: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="asyncio")

    async def make() -> corelogin.Core:
        core = corelogin.init(server_thread.url, APP_KEY)
        assert core.deliver == "asyncio"
        created = await core.users.create(LOGIN)
        assert created.error is None, created
        event = await core.users.login(LOGIN)
        assert event.error is None, event
        return core

    problems: list[str] = []
    loop = asyncio.new_event_loop()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            core = loop.run_until_complete(make())
            started = time.monotonic()
            try:
                core.close()
            except Exception as exc:
                problems.append(f"close() raised {exc!r}")
            elapsed = time.monotonic() - started
            if elapsed >= 2:
                problems.append(f"close() took {elapsed:.1f} s")
            if not core.closed:
                problems.append("core.closed is False")
            del core
            collect_garbage(caught)
            loop.close()
            collect_garbage(caught)
    finally:
        if not loop.is_closed():
            loop.close()
    problems += [
        f"{w.category.__name__}: {w.message}" for w in caught if "never awaited" in str(w.message)
    ]
    problems += unclosed_messages(caught, caplog)
    assert problems == []


# -- Cores dropped without close() ---------------------------------------------------------


@pytest.mark.timeout(60)
def test_dropped_frame_cores_leave_no_io_thread_and_no_unclosed_session(
    user_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="asyncio")
    before = io_threads()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(10):
            core = corelogin.init(user_url, APP_KEY)
            event = core.users.login(LOGIN).result(10)
            assert event.error is None, event
            del core
        deadline = time.monotonic() + 5
        while True:
            collect_garbage(caught)
            leftover = io_threads() - before
            if not leftover or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    problems = [f"{len(leftover)} {IO_THREAD} threads still alive"] if leftover else []
    problems += unclosed_messages(caught, caplog)
    assert problems == []


SCRIPT_SERVER = """
import asyncio
import corelogin
from corelogin.server import ServerConfig, ServerThread

KEY = {key!r}
LOGIN = {{"username": "Donna", "password": {password!r}}}
config = ServerConfig(app_key=KEY, db={db!r}, port=0)
"""

SCRIPT_FRAME = """
with ServerThread(config) as server:
    core = corelogin.init(server.url, KEY)
    assert core.deliver == "frame"
    created = core.users.create(LOGIN).result(10)
    assert created.error is None, created
    event = core.users.login(LOGIN).result(10)
    assert event.error is None, event
# the Core outlives the server and is never closed
print("done")
"""

SCRIPT_ASYNCIO = """
async def main(url):
    core = corelogin.init(url, KEY)
    assert core.deliver == "asyncio"
    created = await core.users.create(LOGIN)
    assert created.error is None, created
    event = await core.users.login(LOGIN)
    assert event.error is None, event
    # never aclose()d

with ServerThread(config) as server:
    asyncio.run(main(server.url))
print("done")
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["frame", "asyncio"])
def test_a_program_that_never_closes_its_core_exits_cleanly(tmp_path: Path, mode: str) -> None:
    head = SCRIPT_SERVER.format(
        key=APP_KEY, password=PASSWORD, db=f"sqlite:///{tmp_path / 'corelogin.sqlite3'}"
    )
    script = textwrap.dedent(head) + textwrap.dedent(
        SCRIPT_FRAME if mode == "frame" else SCRIPT_ASYNCIO
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-W", "default", "-c", script],
        capture_output=True,
        text=True,
        timeout=45,
        check=False,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "done"
    assert done.stderr == ""


# -- exactly once in asyncio mode, with closing racing the calls ------------------------------

ASYNC_KINDS = ["invalid", "hang", "cancelled"]


@pytest.fixture(scope="module")
def hang_server() -> Iterator[FaultServer]:
    with FaultServer("hang") as fault:
        yield fault


async def calls_then_close(
    fault: FaultServer, kinds: list[str], close_from_thread: bool, split: int, before_close: str
) -> None:
    """Make the calls ``kinds`` (``split`` of them before closing starts), then close: with
    ``await core.aclose()``, or with ``core.close()`` on another thread while the rest of the
    calls are made, then ``await core.aclose()``. Every listener must have run exactly once."""
    core = corelogin.init(fault.url, APP_KEY)
    made: list[tuple[str, corelogin.Request, Listener]] = []
    already_received = len(fault.received)

    def call(kind: str) -> None:
        listener = Listener()
        params = UNDECIDABLE if kind == "invalid" else LOGIN
        request = core.users.login(params, listener)
        if kind == "cancelled":
            request.cancel()
        made.append((kind, request, listener))

    try:
        for kind in kinds[:split]:
            call(kind)
        if before_close == "yield":
            for _ in range(3):
                await asyncio.sleep(0)
        elif before_close == "in_flight":  # the server holds every hang call made so far
            hanging = already_received + sum(kind == "hang" for kind, _, _ in made)
            received = await asyncio.to_thread(fault.wait_received, lambda r: len(r) >= hanging, 10)
            assert received
        if close_from_thread:
            closer = threading.Thread(target=core.close)
            closer.start()
            for kind in kinds[split:]:  # racing the close
                call(kind)
                await asyncio.sleep(0)
            await asyncio.to_thread(closer.join, 20)  # the loop keeps running meanwhile
            assert not closer.is_alive()
        else:
            for kind in kinds[split:]:
                call(kind)
    finally:
        await core.aclose()

    for kind, request, listener in made:
        event = await asyncio.wait_for(request, 5)
        assert listener.events == [event], kind
        if kind == "invalid":
            assert event.status == Status.MISSING
        else:
            assert event.status == Status.CANCELLED, (kind, event)


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("tiny_switch_interval")
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    kinds=st.lists(st.sampled_from(ASYNC_KINDS), min_size=1, max_size=8),
    close_from_thread=st.booleans(),
    split=st.integers(min_value=0, max_value=8),
    before_close=st.sampled_from(["nothing", "yield", "in_flight"]),
)
def test_asyncio_mode_delivers_each_call_once_when_close_races_the_calls(
    hang_server: FaultServer,
    kinds: list[str],
    close_from_thread: bool,
    split: int,
    before_close: str,
) -> None:
    asyncio.run(calls_then_close(hang_server, kinds, close_from_thread, split, before_close))


# -- awaiters on ended loops, aclose() in a listener, close() around an app's loop ------------


@pytest.mark.parametrize("deliver", ["frame", "thread"])
def test_an_awaiter_whose_loop_ended_does_not_break_cancel_or_close(
    silent_server: FaultServer, deliver: str
) -> None:
    """An `await request` that timed out on a loop which then ended leaves nothing behind that
    cancel(), close() or a settling call could trip on."""
    before = io_threads()
    core = corelogin.init(silent_server.url, APP_KEY, deliver=deliver)  # type: ignore[arg-type]
    listeners = [Listener(), Listener()]
    requests = [core.users.login(LOGIN, listener) for listener in listeners]
    assert silent_server.wait_received(lambda r: len(r) == 2, 10)

    def await_briefly_on_a_loop_of_its_own() -> None:
        for request in requests:
            with pytest.raises(TimeoutError):
                asyncio.run(asyncio.wait_for(request, 0.05))  # type: ignore[arg-type]

    waiter = threading.Thread(target=await_briefly_on_a_loop_of_its_own)
    waiter.start()
    waiter.join(10)

    assert requests[0].cancel() is True
    core.close()
    assert [listener.statuses for listener in listeners] == [[Status.CANCELLED]] * 2
    assert all(request.done() for request in requests)
    assert io_threads() - before == set()


@pytest.mark.parametrize("deliver", ["asyncio", "thread"])
@pytest.mark.parametrize("how", ["directly", "through wait_for", "after the app's close"])
def test_an_async_listener_may_await_aclose_of_its_own_core(
    user_url: str, deliver: str, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The shutdown does not wait for a listener that awaits the shutdown, however it awaits
    it and whenever it starts to: neither side sits out the 2 s grace."""
    took: dict[str, float] = {}

    async def main() -> None:
        core = corelogin.init(user_url, APP_KEY, deliver=deliver)  # type: ignore[arg-type]
        ended = threading.Event()

        async def close_from_here(event: corelogin.Event) -> None:
            if how == "after the app's close":
                await asyncio.sleep(0.1)  # the app's close has started by now
            started = time.monotonic()
            if how == "through wait_for":  # a child task awaits it on the listener's behalf
                await asyncio.wait_for(core.aclose(), 5)
            else:
                await core.aclose()
            took["listener"] = time.monotonic() - started
            ended.set()

        core.users.login(LOGIN, close_from_here)
        if how == "after the app's close":
            await asyncio.sleep(0.02)  # the listener has started
            started = time.monotonic()
            await core.aclose() if deliver == "asyncio" else await asyncio.to_thread(core.close)
            took["app"] = time.monotonic() - started
        assert await asyncio.to_thread(ended.wait, 10)
        assert core.closed

    asyncio.run(main())
    assert "listener" in took, "the listener went on after aclose()"
    assert max(took.values()) < 1, took
    assert "still running at close()" not in caplog.text


def test_close_from_another_thread_never_runs_an_idle_app_loop(user_url: str) -> None:
    """The app's loop belongs to the app's thread: close() from elsewhere while it is idle only
    posts the shutdown there, and returns without waiting for it."""
    loop = asyncio.new_event_loop()
    ran_on: set[int] = set()
    app_tasks: list[asyncio.Task[None]] = []

    async def app_task() -> None:
        while True:
            ran_on.add(threading.get_ident())
            await asyncio.sleep(0.01)

    async def make() -> corelogin.Core:
        core = corelogin.init(user_url, APP_KEY)
        app_tasks.append(loop.create_task(app_task()))
        assert (await core.users.login(LOGIN)).error is None
        return core

    try:
        core = loop.run_until_complete(make())
        ran_on.clear()
        closer = threading.Thread(target=core.close)
        started = time.monotonic()
        closer.start()
        closer.join(10)
        assert time.monotonic() - started < 2
        assert ran_on == set(), "the app's loop ran on the closing thread"

        loop.run_until_complete(asyncio.sleep(0.05))  # the app runs its loop again: no error
        assert ran_on == {threading.get_ident()}
        assert core._runtime._stopped.is_set(), "the posted shutdown ran on the app's loop"
    finally:
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()


@pytest.mark.timeout(30)
def test_close_from_another_thread_as_asyncio_run_ends_closes_the_session(
    user_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="asyncio")
    made: list[corelogin.Core] = []
    took: list[float] = []
    ready = threading.Event()

    async def main() -> None:
        core = corelogin.init(user_url, APP_KEY)
        assert (await core.users.login(LOGIN)).error is None
        made.append(core)
        ready.set()
        time.sleep(0.3)  # noqa: ASYNC251 (main's last step: the close from another thread lands now)

    def close_it() -> None:
        assert ready.wait(10)
        started = time.monotonic()
        made[0].close()
        took.append(time.monotonic() - started)

    closer = threading.Thread(target=close_it)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        closer.start()
        asyncio.run(main())
        closer.join(10)
        made.clear()
        collect_garbage(caught)
    assert len(took) == 1
    assert took[0] < 2
    assert unclosed_messages(caught, caplog) == []


def test_a_dropped_frame_core_with_listeners_still_queued_is_collected(
    nowhere: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Nobody can run the listeners of a Core nobody holds: it is collected, its I/O thread
    ends, and a warning counts what never ran."""
    caplog.set_level(logging.WARNING, logger="corelogin")
    before = io_threads()
    refs = []
    for _ in range(5):
        core = corelogin.init(nowhere, APP_KEY)
        request = core.users.login(UNDECIDABLE)  # decided at once; its listener waits in the queue
        assert request.done()
        refs.append(weakref.ref(core))
        del core, request
    deadline = time.monotonic() + 5
    while (any(ref() is not None for ref in refs) or io_threads() - before) and (
        time.monotonic() < deadline
    ):
        gc.collect()
        time.sleep(0.05)
    assert [ref() for ref in refs] == [None] * 5
    assert io_threads() - before == set()
    assert caplog.text.count("never ran") == 5


def test_close_from_another_thread_on_an_idle_loop_that_then_closes_leaves_nothing_pending(
    user_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Only a callback is posted to the idle loop: if the app closes that loop without running
    it again, no coroutine or task of the shutdown is left half-made."""
    caplog.set_level(logging.DEBUG, logger="asyncio")
    loop = asyncio.new_event_loop()

    async def make() -> corelogin.Core:
        core = corelogin.init(user_url, APP_KEY)
        assert (await core.users.login(LOGIN)).error is None
        return core

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        core = loop.run_until_complete(make())
        closer = threading.Thread(target=core.close)
        closer.start()
        closer.join(10)
        loop.close()
        del core
        collect_garbage(caught)
    said = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
    assert [line for line in said if "never awaited" in line or "destroyed" in line] == []
