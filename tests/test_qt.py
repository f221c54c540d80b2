"""corelogin.qt: listeners run on the Qt thread, woken by the I/O thread, with no polling.

One QApplication for the whole process, on the offscreen platform. Every wait here is Qt's
own event loop (with a single-shot guard timer that only gives up); nothing calls
``process_events()`` by hand unless the test says so.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("PySide6", reason="corelogin.qt needs PySide6 (the corelogin[qt] extra)")

import shiboken6
from PySide6.QtCore import QCoreApplication, QEvent, QEventLoop, QObject, QThread, QTimer
from PySide6.QtWidgets import QApplication

import corelogin
import corelogin.qt
from corelogin.request import Request
from corelogin.server import ServerThread
from tests.helpers import APP_KEY, LOGIN, PASSWORD, UNDECIDABLE
from tests.netfaults import FaultServer


@pytest.fixture(scope="session")
def app() -> QCoreApplication:
    """The process's QApplication (Qt allows one), on the offscreen platform."""
    existing = QCoreApplication.instance()
    if existing is not None:
        return existing
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("QT_QPA_PLATFORM", "offscreen")
        return QApplication([])


@pytest.fixture
def parent(app: QCoreApplication) -> Iterator[QObject]:
    """A QObject to attach to, deleted after the test (with the pump, if still there)."""
    owner = QObject()
    yield owner
    if shiboken6.isValid(owner):
        shiboken6.delete(owner)


def on_gui_thread() -> bool:
    app = QCoreApplication.instance()
    assert app is not None
    return QThread.currentThread() is app.thread()


class Loop:
    """Qt's event loop, run until `quit` (called by a listener) or until a guard gives up."""

    def __init__(self) -> None:
        self._loop = QEventLoop()
        self._quit = False
        self.running = False

    def quit(self) -> None:
        self._quit = True
        self._loop.quit()

    def run(self, timeout: float) -> bool:
        """True if `quit` was called (since the last run, maybe before this one started),
        False if ``timeout`` s passed first."""
        if not self._quit:
            guard = QTimer()
            guard.setSingleShot(True)
            guard.timeout.connect(self._loop.quit)
            guard.start(round(timeout * 1000))
            self.running = True
            try:
                self._loop.exec()
            finally:
                self.running = False
                guard.stop()
        quit, self._quit = self._quit, False
        return quit


def spin(seconds: float) -> None:
    """Run Qt's event loop for ``seconds``, whatever happens."""
    Loop().run(seconds)


def delete_later(obj: QObject) -> None:
    """``deleteLater()``, then the deferred deletion, as the event loop would do it."""
    obj.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert not shiboken6.isValid(obj)


def settle(request: Request[Any], timeout: float = 10) -> None:
    """Wait until ``request``'s Event is known (its listener queued), without running it."""
    deadline = time.monotonic() + timeout
    while not request.done():
        assert time.monotonic() < deadline, f"{request} got no answer"
        time.sleep(0.005)


class Recorder:
    """A listener that records its events, whether it ran on the GUI thread and inside
    Qt's event loop, and then does ``then`` (by default: nothing)."""

    def __init__(self, loop: Loop | None = None, then: Callable[[], object] | None = None):
        self.loop = loop
        self.then = then
        self.events: list[corelogin.Event[Any]] = []
        self.on_gui_thread: list[bool] = []
        self.in_event_loop: list[bool] = []

    def __call__(self, evt: corelogin.Event[Any]) -> None:
        self.events.append(evt)
        self.on_gui_thread.append(on_gui_thread())
        self.in_event_loop.append(self.loop is not None and self.loop.running)
        if self.then is not None:
            self.then()


# -- delivery ---------------------------------------------------------------------------


def test_listeners_run_on_the_gui_thread_once_each_driven_by_qt_alone(
    app: QCoreApplication, server_thread: ServerThread
) -> None:
    loop = Loop()
    logged_in = Recorder(loop, then=loop.quit)
    params = {"username": "Donna", "password": PASSWORD}
    created = Recorder(loop, then=lambda: core.users.login(params, logged_in))
    with corelogin.init(server_thread.url, APP_KEY) as core:
        assert core.deliver == "frame"
        pump = corelogin.qt.attach(core)
        try:
            assert pump.parent() is app
            assert pump.attached
            assert pump.core is core
            core.users.create(params, created)
            assert created.events == []  # the call returned at once
            assert loop.run(10), "the listeners did not run"
            # The listener of the login made by the first listener ran too, in the same loop.
            spin(0.3)  # and nothing runs twice
            assert len(created.events) == len(logged_in.events) == 1
            user, login = created.events[0], logged_in.events[0]
            assert user.error is None, user
            assert login.error is None, login
            assert login.result.user_id == user.result.user_id
            assert created.on_gui_thread == logged_in.on_gui_thread == [True]
            assert created.in_event_loop == logged_in.in_event_loop == [True]
            assert core.process_events() == 0  # nothing was left for anyone to run by hand
        finally:
            shiboken6.delete(pump)


def test_listeners_waiting_before_attach_run_once_attached(
    parent: QObject, server_thread: ServerThread
) -> None:
    loop = Loop()
    listener = Recorder(loop, then=loop.quit)
    with corelogin.init(server_thread.url, APP_KEY) as core:
        settle(core.users.login(LOGIN, listener))  # Donna does not exist: 603
        assert not loop.run(0.3), "Qt's event loop alone does not run listeners"
        assert listener.events == []
        corelogin.qt.attach(core, parent)  # wakes at once: a listener is waiting
        assert listener.events == []  # ... through the event loop, not inside attach()
        assert loop.run(10)
        assert [evt.status for evt in listener.events] == [corelogin.Status.INVALID_CREDENTIALS]
        assert listener.on_gui_thread == [True]


def test_calls_from_other_threads_deliver_on_the_gui_thread(
    parent: QObject, server_thread: ServerThread
) -> None:
    loop = Loop()
    done = threading.Event()

    def quit_after_ten() -> None:
        if len(listener.events) == 10:
            loop.quit()

    listener = Recorder(loop, then=quit_after_ten)
    with corelogin.init(server_thread.url, APP_KEY) as core:
        corelogin.qt.attach(core, parent)

        def calls() -> None:  # half answered by the server, half at once on this thread
            for _ in range(5):
                core.users.login(LOGIN, listener)
                core.users.login(UNDECIDABLE, listener)
            done.set()

        threading.Thread(target=calls, name="caller").start()
        assert loop.run(10), f"{len(listener.events)} of 10 listeners ran"
        assert done.is_set()
        assert listener.on_gui_thread == [True] * 10
        statuses = sorted(evt.status or 0 for evt in listener.events)
        assert (
            statuses == [corelogin.Status.INVALID_CREDENTIALS] * 5 + [corelogin.Status.MISSING] * 5
        )


def test_close_with_a_call_in_flight_delivers_817_on_the_gui_thread(
    parent: QObject, silent_server: FaultServer
) -> None:
    loop = Loop()
    listener = Recorder(loop, then=loop.quit)
    with corelogin.init(silent_server.url, APP_KEY) as core:
        corelogin.qt.attach(core, parent)
        core.users.login(LOGIN, listener)
        assert silent_server.wait_received(lambda received: len(received) == 1, 10)
        QTimer.singleShot(0, core.close)  # as a window's close button would, in the loop
        assert loop.run(10)
        spin(0.3)
        assert [evt.status for evt in listener.events] == [corelogin.Status.CANCELLED]
        assert listener.on_gui_thread == listener.in_event_loop == [True]
        assert core.closed


# -- detaching ----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["deleteLater", "delete"])
def test_a_pump_deleted_with_its_parent_detaches(
    how: str, app: QCoreApplication, server_thread: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    loop = Loop()
    listener = Recorder(loop, then=loop.quit)
    owner = QObject()
    with corelogin.init(server_thread.url, APP_KEY) as core:
        pump = corelogin.qt.attach(core, owner)
        if how == "deleteLater":
            delete_later(owner)
        else:
            shiboken6.delete(owner)
        assert not shiboken6.isValid(pump)
        assert core._runtime.queue.wakeup is None  # the I/O thread has nothing to emit

        with caplog.at_level(logging.DEBUG, logger="corelogin"):
            request = core.users.login(LOGIN, listener)
            settle(request)
            assert not loop.run(0.3)
        assert listener.events == []  # nobody runs it now ...
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
        assert core.process_events() == 1  # ... but by hand, as in any frame-mode program
        assert [evt.status for evt in listener.events] == [corelogin.Status.INVALID_CREDENTIALS]

        # The Core can be attached again, elsewhere.
        other, loop = QObject(), Loop()
        later = Recorder(loop, then=loop.quit)
        try:
            corelogin.qt.attach(core, other)
            core.users.login(LOGIN, later)
            assert loop.run(10)
            assert later.on_gui_thread == later.in_event_loop == [True]
        finally:
            shiboken6.delete(other)


def test_detach_is_idempotent_and_a_second_attach_is_refused(
    parent: QObject, server_thread: ServerThread
) -> None:
    loop = Loop()
    listener = Recorder(loop, then=loop.quit)
    with corelogin.init(server_thread.url, APP_KEY) as core:
        pump = corelogin.qt.attach(core, parent)
        with pytest.raises(RuntimeError, match="this Core is attached already"):
            corelogin.qt.attach(core, parent)
        pump.detach()
        pump.detach()
        assert not pump.attached
        assert pump.core is None
        assert shiboken6.isValid(pump)  # detached, not deleted

        settle(core.users.login(LOGIN, listener))
        assert not loop.run(0.3)
        assert listener.events == []  # the detached pump runs nothing
        again = corelogin.qt.attach(core, parent)
        assert again is not pump
        assert loop.run(10)
        assert len(listener.events) == 1
        pump.deleteLater()  # the old pump's end does not detach the new one
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        assert again.attached
        core.users.login(LOGIN, listener)
        assert loop.run(10)
        assert len(listener.events) == 2


def test_pumps_come_and_go_while_other_threads_wake_them(
    app: QCoreApplication,
    nowhere: str,
    tiny_switch_interval: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The race: listeners queued (and the wakeup called) on another thread while the GUI
    thread deletes pumps. No crash, no warning, and every listener runs once."""
    listener = Recorder()
    stop = threading.Event()
    made = 0

    with corelogin.init(nowhere, APP_KEY) as core:

        def calls() -> None:
            nonlocal made
            while not stop.is_set():
                core.users.login(UNDECIDABLE, listener)  # answered at once, queued from here
                made += 1

        caller = threading.Thread(target=calls, name="caller")
        with caplog.at_level(logging.DEBUG, logger="corelogin"):
            caller.start()
            try:
                for round_ in range(60):
                    owner = QObject()
                    pump = corelogin.qt.attach(core, owner)
                    wanted, deadline = made + 3, time.monotonic() + 10
                    while made < wanted and time.monotonic() < deadline:
                        app.processEvents()  # the pump runs listeners meanwhile
                        time.sleep(0.0001)  # let the caller make calls meanwhile
                    if round_ % 3 == 0:
                        pump.detach()
                    if round_ % 2:
                        delete_later(owner)
                    else:
                        shiboken6.delete(owner)
            finally:
                stop.set()
                caller.join(10)
            core.process_events()
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
        assert made >= 180  # at least 3 calls in each pump's life
        assert len(listener.events) == made
        assert all(listener.on_gui_thread)
        assert {evt.status for evt in listener.events} == {corelogin.Status.MISSING}


# -- refusals -----------------------------------------------------------------------------


def test_attach_on_another_thread_is_refused(
    app: QCoreApplication, parent: QObject, nowhere: str
) -> None:
    errors: list[BaseException] = []

    def attach(core: corelogin.Core, parent: QObject | None) -> None:
        try:
            corelogin.qt.attach(core, parent)
        except BaseException as exc:
            errors.append(exc)

    # A Core made here, attached there.
    with corelogin.init(nowhere, APP_KEY) as core:
        thread = threading.Thread(target=attach, args=(core, None))
        thread.start()
        thread.join(10)
        assert [str(exc) for exc in errors] == [
            "corelogin.qt.attach() must be called on the thread that created the Core"
        ]
        assert isinstance(errors[0], RuntimeError)
        assert app.findChildren(corelogin.qt.ListenerPump) == []
        corelogin.qt.attach(core, parent).detach()  # nothing was half done

    # A Core made there, attached here.
    made: list[corelogin.Core] = []
    thread = threading.Thread(target=lambda: made.append(corelogin.init(nowhere, APP_KEY)))
    thread.start()
    thread.join(10)
    with made[0] as core, pytest.raises(RuntimeError, match="thread that created the Core"):
        corelogin.qt.attach(core, parent)


def test_attach_to_a_parent_on_another_qt_thread_is_refused(parent: QObject, nowhere: str) -> None:
    elsewhere = QThread()
    parent.moveToThread(elsewhere)
    with (
        corelogin.init(nowhere, APP_KEY) as core,
        pytest.raises(RuntimeError, match="the parent must live on this"),
    ):
        corelogin.qt.attach(core, parent)


def test_attach_to_a_core_in_thread_mode_is_refused(app: QCoreApplication, nowhere: str) -> None:
    with corelogin.init(nowhere, APP_KEY, deliver="thread") as core:
        with pytest.raises(RuntimeError) as caught:
            corelogin.qt.attach(core)
        assert str(caught.value) == (
            "corelogin.qt.attach() is for a Core in frame mode; this one delivers 'thread': "
            "its listeners already run by themselves, on the corelogin-io thread"
        )


async def test_attach_to_a_core_in_asyncio_mode_is_refused(
    app: QCoreApplication, nowhere: str
) -> None:
    async with corelogin.init(nowhere, APP_KEY) as core:
        assert core.deliver == "asyncio"
        with pytest.raises(RuntimeError, match=r"delivers 'asyncio': .* on your loop"):
            corelogin.qt.attach(core)


def test_attach_takes_a_core(app: QCoreApplication) -> None:
    with pytest.raises(TypeError, match="takes a corelogin Core, not str"):
        corelogin.qt.attach("http://127.0.0.1:1")  # type: ignore[arg-type]


def test_import_corelogin_does_not_import_qt() -> None:
    code = "import sys, corelogin; print('PySide6' in sys.modules, 'corelogin.qt' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == ["False", "False"]


def test_without_pyside6_the_import_names_the_extra(tmp_path: Path) -> None:
    """A machine without PySide6: importing corelogin.qt says what to install."""
    (tmp_path / "PySide6").mkdir()
    (tmp_path / "PySide6" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'PySide6'\")\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", "import corelogin.qt"],
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "corelogin.qt needs PySide6: pip install 'corelogin[qt]'" in done.stderr
