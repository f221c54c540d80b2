"""corelogin inside trio.run: awaited calls and run_listeners, without blocking trio's loop."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

trio = pytest.importorskip("trio", reason="trio is not installed (pip install corelogin[trio])")

import corelogin  # noqa: E402
import corelogin.trio  # noqa: E402
from corelogin.server import ServerThread  # noqa: E402
from corelogin.wire import Status  # noqa: E402
from tests.helpers import APP_KEY, LOGIN, PASSWORD, UNDECIDABLE, Listener  # noqa: E402
from tests.netfaults import FaultServer  # noqa: E402

pytestmark = pytest.mark.timeout(60)


def run(fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    return trio.run(fn, *args)


async def heard(listener: Listener, count: int = 1) -> None:
    """Sleep on trio until ``listener`` has ``count`` events (nobody calls process_events())."""
    with trio.fail_after(10):
        while len(listener.events) < count:
            await trio.sleep(0.001)


class Ticks:
    """A task that counts how often trio's loop got round to it."""

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self) -> None:
        while True:
            await trio.sleep(0.002)
            self.count += 1


def test_init_inside_trio_delivers_in_frame_mode(nowhere: str) -> None:
    async def main() -> str:
        with corelogin.init(nowhere, APP_KEY) as core:
            return core.deliver

    assert run(main) == "frame"


def test_await_returns_the_event_after_its_listener_ran_on_trios_thread(
    server_thread: ServerThread,
) -> None:
    listener = Listener()

    async def main() -> tuple[corelogin.Event[corelogin.User], list[corelogin.Event[Any]]]:
        with corelogin.init(server_thread.url, APP_KEY) as core:
            event = await core.users.create(LOGIN, listener)
            return event, list(listener.events)  # what the listener had got by then

    event, seen = run(main)
    assert event.error is None
    assert event.result.username == "Donna"
    assert seen == [event]  # exactly once, before the await returned
    assert listener.threads == [threading.main_thread().ident]


def test_await_does_not_block_trios_loop_while_the_server_is_silent(
    silent_server: FaultServer,
) -> None:
    ticks = Ticks()

    async def main() -> corelogin.Event[corelogin.Login]:
        with corelogin.init(silent_server.url, APP_KEY, timeout=0.5) as core:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ticks)
                event = await core.users.login(LOGIN)
                nursery.cancel_scope.cancel()
            return event

    event = run(main)
    assert event.status == Status.TIMED_OUT
    assert ticks.count > 50  # 0.5 s of waiting at 2 ms a tick: the loop ran all along


def test_run_listeners_delivers_calls_nobody_awaits_on_trios_thread(
    server_thread: ServerThread,
) -> None:
    listener = Listener()

    async def main() -> None:
        with corelogin.init(server_thread.url, APP_KEY) as core:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(corelogin.trio.run_listeners, core)
                core.users.create(LOGIN, listener)
                core.users.login(UNDECIDABLE, listener)
                await heard(listener, 2)
                nursery.cancel_scope.cancel()

    run(main)
    assert sorted(listener.statuses, key=str) == sorted([None, Status.MISSING], key=str)
    assert set(listener.threads) == {threading.main_thread().ident}


def test_run_listeners_sleeps_until_woken_instead_of_polling(
    server_thread: ServerThread,
) -> None:
    """While nothing is queued, run_listeners does not run: it waits on trio's token."""
    passes: list[int] = []
    listener = Listener()

    async def main() -> None:
        with corelogin.init(server_thread.url, APP_KEY) as core:
            original = core.process_events

            def counted() -> int:
                ran = original()
                passes.append(ran)
                return ran

            core.process_events = counted  # type: ignore[method-assign]
            async with trio.open_nursery() as nursery:
                nursery.start_soon(corelogin.trio.run_listeners, core)
                await trio.sleep(0.3)
                idle = len(passes)
                core.users.create(LOGIN, listener)
                await heard(listener)
                await trio.sleep(0.05)
                nursery.cancel_scope.cancel()
            assert idle == 1  # the first pass at start, then asleep for 0.3 s
            assert sum(passes) == 1  # the create's listener, run by the task
            assert len(passes) <= 3  # woken for it (a wakeup may come twice), not polling

    run(main)


def test_a_cancelled_await_loses_nothing(server_thread: ServerThread) -> None:
    listener = Listener()

    async def main() -> None:
        with corelogin.init(server_thread.url, APP_KEY) as core:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(corelogin.trio.run_listeners, core)
                request = core.users.create(LOGIN, listener)
                with trio.move_on_after(0):
                    await request  # given up at once; the call goes on
                await heard(listener)
                assert (await request) is listener.events[0]  # the same Event, once
                nursery.cancel_scope.cancel()

    run(main)
    assert listener.statuses == [None]


def test_close_inside_trio_delivers_the_call_in_flight_as_cancelled(
    silent_server: FaultServer,
) -> None:
    listener = Listener()

    async def main() -> None:
        core = corelogin.init(silent_server.url, APP_KEY)
        core.users.login(LOGIN, listener)
        await trio.sleep(0.05)
        core.close()

    run(main)
    assert listener.statuses == [Status.CANCELLED]
    assert listener.threads == [threading.main_thread().ident]


def test_run_listeners_is_refused_on_another_thread_than_the_cores(nowhere: str) -> None:
    with corelogin.init(nowhere, APP_KEY) as core:
        errors: list[BaseException] = []

        def elsewhere() -> None:
            try:
                trio.run(corelogin.trio.run_listeners, core)
            except RuntimeError as exc:
                errors.append(exc)

        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join(10)
    assert len(errors) == 1
    assert "thread that created the Core" in str(errors[0])


def test_run_listeners_is_refused_for_a_core_that_delivers_on_its_own_thread(
    nowhere: str,
) -> None:
    async def main() -> None:
        with corelogin.init(nowhere, APP_KEY, deliver="thread") as core:
            await corelogin.trio.run_listeners(core)

    with pytest.raises(RuntimeError, match="frame mode"):
        run(main)


def test_await_under_trio_with_thread_delivery_returns_after_the_listener(
    server_thread: ServerThread,
) -> None:
    listener = Listener()

    async def main() -> corelogin.Event[corelogin.User]:
        with corelogin.init(server_thread.url, APP_KEY, deliver="thread") as core:
            event = await core.users.create({"username": "Tina", "password": PASSWORD}, listener)
            assert listener.events == [event]
            return event

    assert run(main).result.username == "Tina"
    assert listener.threads != [threading.main_thread().ident]  # the corelogin-io thread


def test_a_second_run_listeners_is_refused_and_the_first_keeps_running(
    server_thread: ServerThread,
) -> None:
    listener = Listener()

    async def main() -> None:
        with corelogin.init(server_thread.url, APP_KEY) as core:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(corelogin.trio.run_listeners, core)
                await trio.sleep(0.01)
                with pytest.raises(RuntimeError, match="has a wakeup already"):
                    await corelogin.trio.run_listeners(core)
                core.users.create(LOGIN, listener)  # still delivered by the first
                await heard(listener)
                nursery.cancel_scope.cancel()

    run(main)
    assert listener.statuses == [None]


def test_without_trio_the_import_names_the_extra(tmp_path: Path) -> None:
    """A machine without trio: importing corelogin.trio says what to install."""
    (tmp_path / "trio.py").write_text("raise ModuleNotFoundError(\"No module named 'trio'\")\n")
    done = subprocess.run(
        [sys.executable, "-c", "import corelogin.trio"],
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "corelogin.trio needs trio: pip install 'corelogin[trio]'" in done.stderr
