"""Where a `Core` runs its I/O and where it runs listeners (DESIGN.md §2, "Delivery").

- ``asyncio``: both on the app's running loop.
- ``frame``: I/O on a daemon thread with its own loop; listeners queued for the thread that made
  the `Core`, which runs them in ``process_events()`` / ``wait()`` / ``request.result()``.
- ``thread``: I/O and listeners on the daemon I/O thread.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Literal

__all__ = ["Mode", "Runtime"]

log = logging.getLogger("corelogin")

Mode = Literal["asyncio", "frame", "thread"]
MODES: tuple[Mode, ...] = ("asyncio", "frame", "thread")


class Runtime:
    """The loop, threads and queue behind one `Core`."""

    def __init__(self, mode: Mode, loop: asyncio.AbstractEventLoop | None = None) -> None:
        if mode == "asyncio" and loop is None:
            raise ValueError("asyncio delivery needs a running loop")
        self.mode = mode
        self._loop = loop
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self._io_tasks: set[asyncio.Future[Any]] = set()  # the calls: cancelled at close
        self._app_tasks: set[asyncio.Future[Any]] = set()  # async listeners: awaited at close
        self._closing: asyncio.Future[None] | None = None
        self._queue: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        # asyncio and frame: the creating thread; thread: the I/O thread, once it runs.
        self._delivery_ident: int | None = None if mode == "thread" else threading.get_ident()

    # -- threads ---------------------------------------------------------------------------

    def on_delivery_thread(self) -> bool:
        return threading.get_ident() == self._delivery_ident

    def on_io_thread(self) -> bool:
        if self._loop is None:
            return False
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def _io_loop(self) -> asyncio.AbstractEventLoop:
        """The loop I/O runs on; the I/O thread is started on first use."""
        with self._lock:
            if self._loop is None:
                if self._stopped:
                    raise RuntimeError("the core is closed")
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                self._thread = threading.Thread(
                    target=self._run_io, args=(loop, ready), name="corelogin-io", daemon=True
                )
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def _run_io(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        if self.mode == "thread":
            self._delivery_ident = threading.get_ident()
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
            leftovers = asyncio.all_tasks(loop)
            for task in leftovers:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

    def call(self, fn: Callable[..., object], *args: Any) -> None:
        """Run ``fn(*args)`` on the I/O loop soon; safe from any thread."""
        loop = self._io_loop()
        if self.on_io_thread():
            loop.call_soon(fn, *args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    def start(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` as a task on the I/O loop, keeping a reference until it ends."""
        if self.on_io_thread():
            self._track(coro, self._io_tasks)
        else:
            self.call(self._track, coro, self._io_tasks)

    def spawn(self, awaitable: Awaitable[Any], on_error: Callable[[BaseException], None]) -> None:
        """Run an app coroutine (an async listener or receiver) on the I/O loop."""

        def done(task: asyncio.Future[Any]) -> None:
            if not task.cancelled() and task.exception() is not None:
                on_error(task.exception())  # type: ignore[arg-type]

        self.call(lambda: self._track(awaitable, self._app_tasks).add_done_callback(done))

    @staticmethod
    def _track(awaitable: Awaitable[Any], tasks: set[asyncio.Future[Any]]) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(awaitable)
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task

    # -- listeners -------------------------------------------------------------------------

    def deliver(self, fn: Callable[[], None]) -> None:
        """Arrange for ``fn`` to run where this mode runs listeners."""
        if self.mode == "frame":
            self._queue.put(fn)
        elif self.mode == "thread" and self._stopped:
            fn()  # a call made after close(): there is no I/O thread left to run it on
        else:
            self.call(fn)

    def process_events(self) -> int:
        """Run the listeners queued so far (frame mode); returns how many ran."""
        ran = 0
        for _ in range(self._queue.qsize()):
            try:
                fn = self._queue.get_nowait()
            except queue.Empty:
                break
            fn()
            ran += 1
        return ran

    def pump_until(self, done: Callable[[], bool], timeout: float | None) -> bool:
        """Run queued listeners as they arrive until ``done()``, or the timeout passes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not done():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            try:
                fn = self._queue.get(timeout=remaining)
            except queue.Empty:
                return done()
            fn()
        return True

    # -- shutdown --------------------------------------------------------------------------

    def stop(self, final: Callable[[], Coroutine[Any, Any, None]], timeout: float = 5) -> None:
        """Cancel what still runs, await ``final()`` on the I/O loop, then end the I/O thread.

        In asyncio mode the loop belongs to the app: ``final`` is scheduled there instead (await
        `finished` to wait for it).
        """
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            loop = self._loop
        if loop is None or loop.is_closed():
            return
        coro = self._shutdown(final)
        if self.mode == "asyncio":
            if self.on_io_thread():
                self._closing = asyncio.ensure_future(coro)
            else:
                asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)
            return
        if self.on_io_thread():  # close() from a listener on the I/O thread: cannot wait here
            loop.create_task(coro).add_done_callback(lambda _: loop.stop())
            return
        try:
            asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)
        except Exception:
            log.warning("the corelogin I/O loop did not shut down cleanly", exc_info=True)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout)

    async def _shutdown(
        self, final: Callable[[], Coroutine[Any, Any, None]], grace: float = 2.0
    ) -> None:
        """Cancel the calls, give async listeners ``grace`` seconds to finish, then ``final``."""
        calls = list(self._io_tasks)
        for task in calls:
            task.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
        if self._app_tasks:
            _, late = await asyncio.wait(list(self._app_tasks), timeout=grace)
            for task in late:
                log.warning("an async listener was still running at close(): cancelled")
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await final()

    async def finished(self) -> None:
        """Wait for an asyncio-mode shutdown started by `stop`."""
        if self._closing is not None:
            await self._closing
