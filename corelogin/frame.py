"""Frame mode's listener queue: listeners wait here for the thread that made the `Core`.

That thread runs them in ``process_events()`` (once a frame), ``wait()``, ``request.result()``
or ``close()``. Forgetting to call any of these is the classic frame-loop mistake, so a watch
on the I/O loop logs one warning when a listener has waited ``stale_after`` seconds.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import time
from collections.abc import Callable

__all__ = ["ListenerQueue"]

log = logging.getLogger("corelogin")


class ListenerQueue:
    """Thread-safe FIFO of listeners to run; only the creating thread takes from it.

    ``post(fn, *args)`` runs ``fn`` on the I/O loop (False when it has ended): the watch lives
    there, armed once for the oldest listener still waiting.
    """

    stale_after = 5.0

    def __init__(self, post: Callable[..., bool]) -> None:
        self._post = post
        self._queue: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._serials = itertools.count(1)  # atomic in CPython: several threads queue
        self._last_queued = 0
        self._taken = 0  # written by the creating thread only
        self._watching = False
        self._warned = False
        # Called (from the thread that queues) after each put: a host loop's thread-safe wakeup.
        self.wakeup: Callable[[], object] | None = None
        self._wakeup_failed = False

    def __len__(self) -> int:
        """Listeners queued and not yet run."""
        return self._queue.qsize()

    def put(self, fn: Callable[[], None]) -> None:
        serial = next(self._serials)
        self._last_queued = serial
        self._queue.put(fn)
        wakeup = self.wakeup  # read once: another thread may remove it meanwhile
        if wakeup is not None:
            self._wake(wakeup)
        if not self._watching and not self._warned:
            self._watching = True
            if not self._post(self._arm, serial):
                self._watching = False

    def set_wakeup(self, wakeup: Callable[[], object] | None) -> None:
        """Install ``wakeup`` (one at a time: two hosts pumping one queue is a mistake), or
        remove it with None; a new one is called at once if listeners are waiting."""
        if wakeup is not None and self.wakeup is not None and self.wakeup != wakeup:
            raise RuntimeError(
                "this Core has a wakeup already (corelogin.qt.attach or corelogin.trio."
                "run_listeners?): remove it first with set_wakeup(None)"
            )
        self.wakeup = wakeup
        self._wakeup_failed = False
        if wakeup is not None and len(self):
            self._wake(wakeup)

    def clear_wakeup(self, wakeup: Callable[[], object]) -> None:
        """Remove ``wakeup`` if it is still the one installed (a host detaching its own)."""
        if self.wakeup == wakeup:  # equal, not identical: a bound method is made anew
            self.wakeup = None

    def _wake(self, wakeup: Callable[[], object]) -> None:
        try:
            wakeup()
        except Exception:  # the host's loop may have ended: the queue still holds the listener
            # Once per wakeup installed: a host that has ended would otherwise log every call.
            level = logging.DEBUG if self._wakeup_failed else logging.WARNING
            self._wakeup_failed = True
            log.log(
                level,
                "a corelogin wakeup function raised; the listener stays queued",
                exc_info=True,
            )

    def run_ready(self) -> int:
        """Run the listeners queued so far, without waiting; returns how many ran."""
        ran = 0
        for _ in range(len(self)):
            if not self._run_next():
                break
            ran += 1
        return ran

    def run_until(self, done: Callable[[], bool], timeout: float | None) -> bool:
        """Run listeners as they arrive until ``done()``, or the timeout passes.

        What is queued already runs even with a timeout of 0: zero means "do not wait",
        not "do not deliver".
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not done():
            if self._run_next():
                continue
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            if not self._run_next(remaining):
                return done()
        return True

    def _run_next(self, wait: float | None = 0) -> bool:
        """Run the next listener, waiting up to ``wait`` s for one (None: for ever)."""
        try:
            fn = self._queue.get_nowait() if wait == 0 else self._queue.get(timeout=wait)
        except queue.Empty:
            return False
        self._taken += 1
        fn()  # a KeyboardInterrupt goes on to the caller; the rest stays queued
        return True

    # -- the watch, on the I/O loop --------------------------------------------------------

    def _arm(self, serial: int) -> None:
        asyncio.get_running_loop().call_later(self.stale_after, self._check, serial)

    def _check(self, serial: int) -> None:
        """``stale_after`` s after listener number ``serial`` was queued."""
        if self._warned:
            return
        if self._taken < serial:
            self._warned = True
            log.warning(
                "%d corelogin listener(s) have waited %g s to run: in frame mode listeners run "
                "only when the thread that made the Core calls core.process_events() (once a "
                "frame), core.wait() or request.result()",
                self._last_queued - self._taken,
                self.stale_after,
            )
        elif self._last_queued > self._taken:  # newer ones are waiting: watch the newest
            self._arm(self._last_queued)
            return
        self._watching = False
