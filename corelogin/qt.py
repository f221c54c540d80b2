"""Qt (PySide6): run a `Core`'s listeners on the GUI thread as soon as their answers arrive.

A `Core` made outside any asyncio loop delivers in frame mode: its I/O runs on the
``corelogin-io`` thread and listeners wait for the thread that made it. ``attach(core)`` makes
them run on that (Qt) thread, driven by Qt's own event loop: the I/O thread emits a signal each
time a listener is queued, and a queued connection runs ``core.process_events()`` on the GUI
thread. No timer, no polling, no latency beyond one pass of the event loop; and since listeners
run on the GUI thread, they may update widgets directly::

    app = QApplication(sys.argv)
    core = corelogin.init(url, key)
    corelogin.qt.attach(core)        # for the application's lifetime
    core.users.login(params, lambda evt: label.setText(evt.error or "Logged in"))
    app.exec()

The pump detaches itself when it is destroyed (with its parent, or the application). The
signal the I/O thread emits belongs to a parentless object only Python owns, which lives as long
as anything can still emit it: Qt itself disconnects the pump when it goes, so nothing is ever
emitted on a deleted C++ object, whatever the timing.

With an asyncio loop driving Qt (qasync, PySide6.QtAsyncio), make the Core inside that loop
instead: listeners then run on it, and nothing here is needed. Install the ``corelogin[qt]``
extra for PySide6; this module is not imported by ``import corelogin``.
"""

from __future__ import annotations

import logging
import threading
import weakref

try:
    from PySide6.QtCore import QCoreApplication, QObject, Qt, QThread, Signal, Slot
except ModuleNotFoundError as exc:  # say which extra, not just which module
    raise ModuleNotFoundError("corelogin.qt needs PySide6: pip install 'corelogin[qt]'") from exc

from corelogin.client import Core

__all__ = ["ListenerPump", "attach"]

log = logging.getLogger("corelogin")

# The live pump of each Core: a Core has one wakeup, so at most one pump.
_pumps: weakref.WeakKeyDictionary[Core, _Link] = weakref.WeakKeyDictionary()
_pumps_lock = threading.Lock()


class _Wakeup(QObject):
    """The sender, emitted from any thread. No parent: only Python owns it, so it lives while
    an I/O thread can still call `_Link.wake`, and only Qt's thread-safe part is ever used."""

    ready = Signal()


class _Link:
    """What the Core's I/O thread holds. No reference to the pump, which Qt may delete, and
    only a weak one to the Core: attaching does not keep a forgotten Core alive."""

    def __init__(self, core: Core) -> None:
        self._core: weakref.ref[Core] | None = weakref.ref(core)
        self.wakeup: _Wakeup | None = _Wakeup()
        self.lock = threading.Lock()
        self.signalled = False  # a run of process_events() is queued already

    @property
    def core(self) -> Core | None:
        return None if self._core is None else self._core()

    def wake(self) -> None:
        """The Core's wakeup, called from the I/O thread (or any thread that queues)."""
        with self.lock:
            if self.wakeup is not None and not self.signalled:
                self.signalled = True
                self.wakeup.ready.emit()  # queued for the pump, whose thread runs the slot

    def take(self) -> Core | None:
        """On the pump's thread, for each emit, before it runs listeners: one queued from
        now on emits again."""
        with self.lock:
            self.signalled = False
            return self.core

    def detach(self, *_: object) -> None:
        """Stop waking up; idempotent, from any thread (``destroyed`` passes the object)."""
        with self.lock:
            core = self.core
            self._core = None
            wakeup, self.wakeup = self.wakeup, None
        if core is not None:
            with _pumps_lock:
                if _pumps.get(core) is self:
                    del _pumps[core]
                    core._runtime.queue.clear_wakeup(self.wake)
        del wakeup  # deleted here, on this thread: no emit can be running, it held the lock


class ListenerPump(QObject):
    """Runs a Core's listeners on its own thread when told to; made by `attach`."""

    def __init__(self, core: Core, parent: QObject) -> None:
        super().__init__(parent)
        self.setObjectName("corelogin-listener-pump")
        self._link = _Link(core)
        assert self._link.wakeup is not None
        self._link.wakeup.ready.connect(self._run, Qt.ConnectionType.QueuedConnection)
        # Connected to the link, not to this object: it runs while this one is being deleted.
        self.destroyed.connect(self._link.detach)

    @property
    def core(self) -> Core | None:
        """The Core whose listeners this runs; None once detached."""
        return self._link.core

    @property
    def attached(self) -> bool:
        return self._link.core is not None

    def detach(self) -> None:
        """Stop running the Core's listeners (they wait for ``process_events()`` again).
        Idempotent; deleting the pump, or its parent, does it too."""
        self._link.detach()

    @Slot()
    def _run(self) -> None:
        core = self._link.take()
        if core is None:
            return
        try:
            core.process_events()
        except BaseException:  # Ctrl-C or sys.exit() in a listener: the rest run next time
            self._link.wake()
            raise


def attach(core: Core, parent: QObject | None = None) -> ListenerPump:
    """Run ``core``'s listeners on this thread's Qt event loop, as soon as they are queued.

    Call it on the thread that made the Core (the GUI thread), after creating the
    QApplication. The returned pump is a child of ``parent`` (default: the application) and
    detaches when it is destroyed, or by ``pump.detach()``. Raises RuntimeError if the Core
    does not deliver in frame mode, was made on another thread, or is attached already.
    """
    if not isinstance(core, Core):
        raise TypeError(f"attach() takes a corelogin Core, not {type(core).__name__}")
    if core.deliver != "frame":
        where = "on the corelogin-io thread" if core.deliver == "thread" else "on your loop"
        raise RuntimeError(
            f"corelogin.qt.attach() is for a Core in frame mode; this one delivers "
            f"{core.deliver!r}: its listeners already run by themselves, {where}"
        )
    core._require_delivery_thread("corelogin.qt.attach()")
    if parent is None:
        parent = QCoreApplication.instance()
        if parent is None:
            raise RuntimeError("corelogin.qt.attach(): create the QApplication first")
    if parent.thread() is not QThread.currentThread():
        raise RuntimeError("corelogin.qt.attach(): the parent must live on this (the GUI) thread")
    with _pumps_lock:
        if core in _pumps:
            raise RuntimeError(
                "corelogin.qt.attach(): this Core is attached already; use the pump attach() "
                "returned, or call its detach() first"
            )
        pump = ListenerPump(core, parent)
        _pumps[core] = pump._link
    core.set_wakeup(pump._link.wake)  # emits at once if listeners wait already
    log.debug("corelogin.qt: %r runs its listeners on %s", core, QThread.currentThread())
    return pump
