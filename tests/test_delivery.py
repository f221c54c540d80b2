"""Delivery (DESIGN.md §2): the listener runs on the thread its mode promises, and nowhere else."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import corelogin
from corelogin.request import Listener
from corelogin.server import RunningServer
from tests.helpers import APP_KEY, IO_THREAD, LOGIN, PASSWORD, io_threads, make_user
from tests.netfaults import FaultServer

pytestmark = pytest.mark.timeout(60)


def create_user_sync(url: str, username: str = "Donna") -> None:
    with corelogin.init(url, APP_KEY) as core:
        event = core.users.create({"username": username, "password": PASSWORD}).result(10)
    assert event.error is None, event


class Recorder:
    """A listener that records the event and the thread it ran on."""

    def __init__(self) -> None:
        self.calls: list[tuple[corelogin.Event, int, str]] = []

    def __call__(self, event: corelogin.Event) -> None:
        thread = threading.current_thread()
        self.calls.append((event, threading.get_ident(), thread.name))

    @property
    def idents(self) -> set[int]:
        return {ident for _, ident, _ in self.calls}


# -- asyncio mode ---------------------------------------------------------------------------


async def test_auto_delivery_is_asyncio_inside_a_running_loop(core: corelogin.Core) -> None:
    assert core.deliver == "asyncio"


async def test_listener_runs_on_loop_thread_in_asyncio_mode(core: corelogin.Core) -> None:
    await make_user(core)
    listener = Recorder()

    event = await core.users.login(LOGIN, listener)

    assert event.error is None, event
    assert len(listener.calls) == 1, "the listener runs before `await request` returns"
    assert listener.calls[0][0] is event
    assert listener.idents == {threading.get_ident()}


async def test_async_listener_runs_on_the_loop_in_asyncio_mode(core: corelogin.Core) -> None:
    await make_user(core)
    loop = asyncio.get_running_loop()
    ran = asyncio.Event()
    seen: list[tuple[corelogin.Event, asyncio.AbstractEventLoop, int]] = []

    async def listener(event: corelogin.Event) -> None:
        await asyncio.sleep(0)  # really a coroutine, suspended once
        seen.append((event, asyncio.get_running_loop(), threading.get_ident()))
        ran.set()

    event = await core.users.login(LOGIN, listener)
    await asyncio.wait_for(ran.wait(), 10)

    assert len(seen) == 1
    assert seen[0][0] is event
    assert seen[0][1] is loop
    assert seen[0][2] == threading.get_ident()


async def test_await_request_gives_the_event_the_listener_got(core: corelogin.Core) -> None:
    listener = Recorder()
    request = core.users.login({"username": "Donna"}, listener)  # 804, no network

    event = await request

    assert event.status == corelogin.Status.MISSING
    assert [e for e, _, _ in listener.calls] == [event]
    assert request.done()


async def test_result_inside_the_running_loop_raises_instead_of_deadlocking(
    core: corelogin.Core,
) -> None:
    await make_user(core)
    request = core.users.login(LOGIN)

    with pytest.raises(RuntimeError, match=r"deadlock.*await request"):
        request.result(timeout=5)

    event = await request  # still delivered normally
    assert event.error is None, event


async def test_core_wait_inside_the_running_loop_raises(core: corelogin.Core) -> None:
    request = core.users.login({"username": "Donna"})
    with pytest.raises(RuntimeError, match="deadlock"):
        core.wait(timeout=5)
    assert (await request).status == corelogin.Status.MISSING


async def test_process_events_returns_zero_in_asyncio_mode(core: corelogin.Core) -> None:
    listener = Recorder()
    request = core.users.login({"username": "Donna"}, listener)
    assert core.process_events() == 0
    await request
    assert len(listener.calls) == 1


async def test_init_asyncio_mode_without_a_loop_is_refused_off_loop(
    server: RunningServer,
) -> None:
    def make() -> corelogin.Core:
        return corelogin.init(server.url, APP_KEY, deliver="asyncio")

    with ThreadPoolExecutor(1) as pool, pytest.raises(RuntimeError, match="running loop"):
        pool.submit(make).result(10)


async def test_calls_from_another_thread_are_delivered_on_the_loop_in_asyncio_mode(
    core: corelogin.Core,
) -> None:
    await make_user(core)
    listener = Recorder()

    def from_a_worker() -> corelogin.Event:
        return core.users.login(LOGIN, listener).result(timeout=20)  # blocking is fine there

    event = await asyncio.get_running_loop().run_in_executor(None, from_a_worker)

    assert event.error is None, event
    assert [e for e, _, _ in listener.calls] == [event]
    assert listener.idents == {threading.get_ident()}


# -- frame mode -----------------------------------------------------------------------------


def test_frame_mode_is_the_default_without_a_running_loop(user_url: str) -> None:
    with corelogin.init(user_url, APP_KEY) as core:
        assert core.deliver == "frame"


def test_listener_runs_only_when_the_creating_thread_processes_events(user_url: str) -> None:
    listener = Recorder()
    with corelogin.init(user_url, APP_KEY) as core, ThreadPoolExecutor(1) as pool:
        request = core.users.login(LOGIN, listener)
        # Another thread may block on the result: it waits for the Event, not the listener.
        event = pool.submit(request.result, 10).result(15)
        assert event.error is None, event
        assert request.done()
        assert listener.calls == [], "nothing runs until the creating thread asks"

        assert core.process_events() == 1
        assert [e for e, _, _ in listener.calls] == [event]
        assert listener.idents == {threading.get_ident()}
        assert core.process_events() == 0


def test_process_events_never_blocks_while_calls_are_in_flight(
    silent_server: FaultServer,
) -> None:
    listener = Recorder()
    with corelogin.init(silent_server.url, APP_KEY) as core:
        request = core.users.login(LOGIN, listener)
        assert silent_server.wait_received(lambda r: len(r) == 1, 10)

        assert core.process_events() == 0  # returns at once; the call is still pending
        assert not request.done()
        assert listener.calls == []
    # close() on the creating thread delivers the cancellation before returning
    assert [e.status for e, _, _ in listener.calls] == [corelogin.Status.CANCELLED]


def test_process_events_returns_how_many_listeners_ran(user_url: str) -> None:
    listeners = [Recorder() for _ in range(3)]
    with corelogin.init(user_url, APP_KEY) as core, ThreadPoolExecutor(1) as pool:
        requests = [core.users.login(LOGIN, listener) for listener in listeners]
        for request in requests:
            pool.submit(request.result, 10).result(15)
        assert all(listener.calls == [] for listener in listeners)

        assert core.process_events() == 3
        assert all(len(listener.calls) == 1 for listener in listeners)
        assert core.process_events() == 0


def test_core_wait_runs_listeners_on_the_creating_thread(user_url: str) -> None:
    listeners = [Recorder() for _ in range(4)]
    with corelogin.init(user_url, APP_KEY) as core:
        for listener in listeners:
            core.users.login(LOGIN, listener)

        assert core.wait(timeout=20) is True

        for listener in listeners:
            assert len(listener.calls) == 1
            assert listener.calls[0][0].error is None
            assert listener.idents == {threading.get_ident()}
        assert core.process_events() == 0


def test_request_result_runs_the_listener_before_returning_in_frame_mode(user_url: str) -> None:
    listener = Recorder()
    with corelogin.init(user_url, APP_KEY) as core:
        event = core.users.login(LOGIN, listener).result(timeout=10)

        assert event.error is None, event
        assert [e for e, _, _ in listener.calls] == [event]
        assert listener.idents == {threading.get_ident()}


def test_core_wait_for_one_request_in_frame_mode(user_url: str) -> None:
    listener = Recorder()
    with corelogin.init(user_url, APP_KEY) as core:
        request = core.users.login(LOGIN, listener)
        assert core.wait(request, timeout=10) is True
        assert len(listener.calls) == 1
        assert listener.idents == {threading.get_ident()}


def test_core_wait_inside_a_frame_mode_listener_runs_the_nested_listeners(user_url: str) -> None:
    inner = Recorder()
    outcome: list[bool] = []
    with corelogin.init(user_url, APP_KEY) as core:

        def outer(event: corelogin.Event) -> None:
            core.users.login(LOGIN, inner)
            outcome.append(core.wait(timeout=10))

        core.users.login(LOGIN, outer).result(timeout=10)

    assert outcome == [True], "the outer listener's own delivery does not block its wait()"
    assert len(inner.calls) == 1
    assert inner.idents == {threading.get_ident()}


def test_frame_mode_never_runs_listeners_on_the_io_thread(user_url: str) -> None:
    listener = Recorder()
    with corelogin.init(user_url, APP_KEY) as core:
        core.users.login(LOGIN, listener)
        core.users.login({"username": "Donna", "password": "wrong password"}, listener)
        core.users.login({"password": PASSWORD}, listener)  # 804, no network
        assert core.wait(timeout=20)
    assert sorted(e.status or 0 for e, _, _ in listener.calls) == [0, 603, 804]
    assert {name for _, _, name in listener.calls} == {threading.current_thread().name}
    assert IO_THREAD not in {name for _, _, name in listener.calls}


def test_result_times_out_without_losing_the_event(silent_server: FaultServer) -> None:
    listener = Recorder()
    with corelogin.init(silent_server.url, APP_KEY) as core:
        request = core.users.login(LOGIN, listener)
        with pytest.raises(TimeoutError):
            request.result(timeout=0.05)
        assert not request.done()
        assert request.cancel() is True
        assert request.result(timeout=10).status == corelogin.Status.CANCELLED
    assert len(listener.calls) == 1


def test_process_events_from_another_thread_is_refused(user_url: str) -> None:
    with corelogin.init(user_url, APP_KEY) as core, ThreadPoolExecutor(1) as pool:
        future = pool.submit(core.process_events)
        with pytest.raises(RuntimeError, match="thread that created"):
            future.result(10)


def test_one_frame_core_shared_by_eight_threads(user_url: str) -> None:
    threads_n, calls_n = 8, 10
    main = threading.get_ident()
    lock = threading.Lock()
    delivered: dict[tuple[int, int], list[tuple[corelogin.Event, int]]] = {}
    results: dict[tuple[int, int], corelogin.Event] = {}
    errors: list[BaseException] = []

    def listener_for(key: tuple[int, int]) -> Listener:
        def listener(event: corelogin.Event) -> None:
            with lock:
                delivered.setdefault(key, []).append((event, threading.get_ident()))

        return listener

    with corelogin.init(user_url, APP_KEY) as core:

        def worker(n: int) -> None:
            try:
                requests = [
                    ((n, i), core.users.login(LOGIN, listener_for((n, i)))) for i in range(calls_n)
                ]
                for key, request in requests:
                    results[key] = request.result(timeout=60)
            except BaseException as exc:
                errors.append(exc)

        workers = [
            threading.Thread(target=worker, args=(n,), name=f"worker-{n}") for n in range(threads_n)
        ]
        for thread in workers:
            thread.start()
        while any(thread.is_alive() for thread in workers):
            core.process_events()  # the app's frame loop, while the workers call
            workers[0].join(0.005)
        assert core.wait(timeout=30)

    assert errors == []
    keys = {(n, i) for n in range(threads_n) for i in range(calls_n)}
    assert set(delivered) == keys
    for key in keys:
        assert len(delivered[key]) == 1, f"{key} delivered {len(delivered[key])} times"
        event, ident = delivered[key][0]
        assert ident == main, "listeners run on the creating thread only"
        assert event is results[key]
        assert event.error is None, event


# -- thread mode ----------------------------------------------------------------------------


def test_listener_runs_on_the_io_thread_in_thread_mode(user_url: str) -> None:
    listener = Recorder()
    with corelogin.init(user_url, APP_KEY, deliver="thread") as core:
        assert core.deliver == "thread"
        event = core.users.login(LOGIN, listener).result(timeout=10)

        assert event.error is None, event
        assert [e for e, _, _ in listener.calls] == [event]
        [(_, ident, name)] = listener.calls
        assert name == IO_THREAD
        assert ident != threading.get_ident()
        assert core.process_events() == 0


def test_validation_errors_are_delivered_on_the_io_thread_in_thread_mode(user_url: str) -> None:
    listener = Recorder()
    with corelogin.init(user_url, APP_KEY, deliver="thread") as core:
        event = core.users.login({"username": ""}, listener).result(timeout=10)
    assert event.status == corelogin.Status.EMPTY
    assert [name for _, _, name in listener.calls] == [IO_THREAD]


def test_result_from_a_listener_raises_instead_of_deadlocking_in_thread_mode(
    user_url: str,
) -> None:
    raised: list[BaseException] = []
    with corelogin.init(user_url, APP_KEY, deliver="thread") as core:
        first = core.users.login(LOGIN)

        def listener(event: corelogin.Event) -> None:
            for block in (lambda: first.result(timeout=5), lambda: core.wait(timeout=5)):
                try:
                    block()
                except RuntimeError as exc:
                    raised.append(exc)

        second = core.users.login(LOGIN, listener)
        assert second.result(timeout=20).error is None

    assert len(raised) == 2
    assert all("deadlock" in str(exc) for exc in raised)


def test_core_wait_in_thread_mode_waits_until_the_listener_has_run(user_url: str) -> None:
    gate = threading.Event()
    finished: list[corelogin.Event] = []

    def slow_listener(event: corelogin.Event) -> None:
        gate.wait(10)
        finished.append(event)

    with corelogin.init(user_url, APP_KEY, deliver="thread") as core:
        request = core.users.login(LOGIN, slow_listener)
        try:
            assert core.wait(request, timeout=0.3) is False
            assert core.wait(timeout=0.3) is False, "the listener has not finished yet"
        finally:
            gate.set()
        assert core.wait(timeout=10) is True
        assert len(finished) == 1


# -- closing --------------------------------------------------------------------------------


@pytest.mark.parametrize("deliver", ["frame", "thread"])
def test_no_io_thread_is_left_after_close(user_url: str, deliver: str) -> None:
    before = io_threads()
    core = corelogin.init(user_url, APP_KEY, deliver=deliver)  # type: ignore[arg-type]
    assert core.users.login(LOGIN).result(timeout=10).error is None
    started = io_threads() - before
    assert len(started) == 1, "the call started one I/O thread"

    core.close()

    assert core.closed
    assert not any(thread.is_alive() for thread in started)


def test_close_without_any_call_starts_no_thread(user_url: str) -> None:
    before = io_threads()
    core = corelogin.init(user_url, APP_KEY)
    core.close()
    assert io_threads() - before == set()


@pytest.mark.parametrize("deliver", ["frame", "thread"])
def test_close_from_a_listener_ends_the_core(user_url: str, deliver: str) -> None:
    before = io_threads()
    inside: list[tuple[bool, threading.Thread]] = []
    core = corelogin.init(user_url, APP_KEY, deliver=deliver)  # type: ignore[arg-type]

    def closing_listener(event: corelogin.Event) -> None:
        core.close()
        inside.append((core.closed, threading.current_thread()))

    request = core.users.login(LOGIN, closing_listener)
    assert request.result(timeout=10).error is None
    started = io_threads() - before
    core.close()

    assert len(inside) == 1
    assert inside[0][0] is True
    for thread in started:
        thread.join(10)
        assert not thread.is_alive(), "the I/O thread ends even when closed from a listener"
    assert core.users.login(LOGIN).result(timeout=10).status == corelogin.Status.CANCELLED


@pytest.mark.parametrize("deliver", ["frame", "thread"])
def test_close_is_idempotent(user_url: str, deliver: str) -> None:
    listener = Recorder()
    core = corelogin.init(user_url, APP_KEY, deliver=deliver)  # type: ignore[arg-type]
    assert core.users.login(LOGIN, listener).result(timeout=10).error is None
    core.close()
    core.close()
    assert core.closed
    assert len(listener.calls) == 1

    after = core.users.login(LOGIN, listener)  # a call after close is answered, not lost
    assert after.result(timeout=10).status == corelogin.Status.CANCELLED
    core.close()
    assert len(listener.calls) == 2


def test_with_block_closes_the_core(user_url: str) -> None:
    before = io_threads()
    with corelogin.init(user_url, APP_KEY) as core:
        assert core.users.login(LOGIN).result(timeout=10).error is None
        started = io_threads() - before
        open_inside = not core.closed
    assert open_inside
    assert core.closed
    assert started
    assert not any(thread.is_alive() for thread in started)


async def test_async_with_closes_the_core(server: RunningServer) -> None:
    async with corelogin.init(server.url, APP_KEY) as core:
        await make_user(core)
        open_inside = not core.closed
    assert open_inside
    assert core.closed
    event = await core.users.login(LOGIN)
    assert event.status == corelogin.Status.CANCELLED


async def test_no_io_thread_in_asyncio_mode(core: corelogin.Core) -> None:
    before = io_threads()
    await make_user(core)
    assert (await core.users.login(LOGIN)).error is None
    assert io_threads() - before == set()


# -- async listeners and misuse -------------------------------------------------------------


def test_async_listener_is_refused_in_frame_mode(user_url: str) -> None:
    async def on_login(event: corelogin.Event) -> None:
        pass  # pragma: no cover - never called

    with corelogin.init(user_url, APP_KEY) as core, pytest.raises(TypeError, match="frame mode"):
        core.users.login(LOGIN, on_login)


def test_a_listener_returning_a_coroutine_in_frame_mode_is_reported(
    user_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []

    async def body() -> None:
        ran.append("body")  # pragma: no cover - must never run on the I/O thread

    errors: list[BaseException] = []
    unsubscribe = corelogin.signals.subscribe(
        corelogin.signals.listener_error, lambda _, event, exception: errors.append(exception)
    )
    try:
        with corelogin.init(user_url, APP_KEY) as core:
            event = core.users.login(LOGIN, lambda _: body()).result(10)
    finally:
        unsubscribe()
    assert event.error is None
    assert ran == []
    assert len(errors) == 1
    assert isinstance(errors[0], TypeError)
    assert "frame mode" in caplog.text


async def test_aclose_lets_a_running_async_listener_finish(core: corelogin.Core) -> None:
    await make_user(core)
    finished: list[str] = []

    async def slow_listener(event: corelogin.Event) -> None:
        await asyncio.sleep(0.2)
        finished.append(event.result.username)

    await core.users.login(LOGIN, slow_listener)
    await core.aclose()

    assert finished == ["Donna"]


def test_wait_with_a_number_first_is_a_clear_type_error(user_url: str) -> None:
    with corelogin.init(user_url, APP_KEY) as core, pytest.raises(TypeError, match="timeout="):
        core.wait(60)  # type: ignore[arg-type]


def test_result_of_its_own_request_inside_the_listener_returns_at_once(user_url: str) -> None:
    seen: list[corelogin.Event] = []
    with corelogin.init(user_url, APP_KEY) as core:
        holder: list[corelogin.Request] = []

        def listener(event: corelogin.Event) -> None:
            seen.append(holder[0].result(timeout=5))

        holder.append(core.users.login(LOGIN, listener))
        event = holder[0].result(10)
    assert seen == [event]


def test_the_io_thread_never_keeps_a_process_alive() -> None:
    """A script that forgets close(), with a call still in flight, exits at once."""
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        script = (
            "import corelogin, threading\n"
            f"core = corelogin.init({url!r}, 'key', timeout=600)\n"
            "core.users.login({'username': 'Donna', 'password': 'pw'})\n"
            "assert any(t.name == 'corelogin-io' for t in threading.enumerate())\n"
            "print('leaving')\n"
        )
        # Held by the I/O thread, the script would hang for the call's 600 s: the 60 s limit
        # of subprocess.run turns that into a failure.
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "leaving"
