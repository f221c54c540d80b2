"""Where a `Core` runs its I/O and its listeners, and how all of it ends (DESIGN.md §2).

- ``asyncio``: both on the app's running loop.
- ``frame``: I/O on a daemon thread with its own loop; listeners queued for the thread that made
  the `Core`, which runs them in ``process_events()`` / ``wait()`` / ``request.result()``.
- ``thread``: I/O and listeners on the daemon I/O thread.

Work reaches the I/O loop only through `Runtime.post`, under one lock; the shutdown takes the
same lock to stop accepting work, on the loop itself, and then lets everything posted before
run. So nothing is ever posted to a loop that has ended, and nothing posted is lost: a call
refused is settled by the caller (817), and a listener refused runs where the caller is.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Literal

from corelogin.frame import ListenerQueue

__all__ = ["Mode", "Runtime"]

log = logging.getLogger("corelogin")

Mode = Literal["asyncio", "frame", "thread"]
MODES: tuple[Mode, ...] = ("asyncio", "frame", "thread")

# A BaseException a listener raises on the app's own thread that goes on to the app instead of
# being reported: Ctrl-C and sys.exit() must still work from a game's frame loop.
FATAL: tuple[type[BaseException], ...] = (KeyboardInterrupt, SystemExit)

# The async listener (app task) that code runs on behalf of, child tasks included: a listener
# awaiting aclose() through wait_for() or gather() is still the listener awaiting it.
_app_task: contextvars.ContextVar[asyncio.Future[Any] | None] = contextvars.ContextVar(
    "corelogin_app_task", default=None
)


class Runtime:
    """The loop, thread and queue behind one `Core`.

    ``final`` is awaited on the I/O loop at shutdown (closing the HTTP session); ``abandon``
    is its synchronous stand-in for when no loop is left to await it on.
    """

    grace = 2.0  # seconds async listeners get to finish at shutdown

    def __init__(
        self,
        mode: Mode,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        final: Callable[[], Coroutine[Any, Any, None]],
        abandon: Callable[[], None],
    ) -> None:
        if (mode == "asyncio") != (loop is not None):
            raise ValueError("asyncio delivery runs on the app's loop; the others on their own")
        self.mode = mode
        # Listener exceptions that go on to the app: none on the Core's own I/O thread.
        self.fatal: tuple[type[BaseException], ...] = () if mode == "thread" else FATAL
        self._loop = loop
        self._final = final
        self._abandon = abandon
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._accepting = True  # guarded by _lock; turned off on the loop when shutdown starts
        self._stopping = False  # stop() was called (or the app's loop ended)
        self._shut_down = False  # _shutdown has started (on the loop; it runs once)
        self._stopped = threading.Event()  # the shutdown is over
        self._io_tasks: set[asyncio.Future[Any]] = set()  # the calls: cancelled at shutdown
        self._app_tasks: set[asyncio.Future[Any]] = set()  # async listeners: given `grace`
        self._closing: asyncio.Future[None] | None = None
        self.queue = ListenerQueue(self.post)  # frame mode's listeners
        # asyncio and frame: the creating thread; thread: the I/O thread, once it runs.
        self._delivery_ident: int | None = None if mode == "thread" else threading.get_ident()
        self._closers: set[asyncio.Future[Any]] = set()  # tasks awaiting `finished`
        self._watcher: asyncio.Future[None] | None = None
        if loop is not None:
            self._watcher = loop.create_task(self._watch_app_loop())
            # Pending for the Core's whole life by design: when an app closes its loop by
            # hand with the Core still open, the finalizer deals with the session, and
            # "Task was destroyed but it is pending" would only be noise.
            self._watcher._log_destroy_pending = False  # type: ignore[attr-defined]

    # -- threads ---------------------------------------------------------------------------

    def on_delivery_thread(self) -> bool:
        return threading.get_ident() == self._delivery_ident

    def on_io_thread(self) -> bool:
        # asyncio's own non-raising form of get_running_loop(): this is on every call's path.
        return self._loop is not None and asyncio._get_running_loop() is self._loop

    def _start_io(self) -> asyncio.AbstractEventLoop:
        """Start the I/O thread and its loop (frame and thread modes; caller holds the lock)."""
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run_io, args=(loop, ready), name="corelogin-io", daemon=True
        )
        self._thread.start()
        ready.wait()
        self._loop = loop
        return loop

    def _run_io(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        if self.mode == "thread":
            self._delivery_ident = threading.get_ident()
        loop.call_soon(ready.set)
        try:
            loop.run_forever()  # until the shutdown stops it; it accepts nothing new by then
            # Async listeners still running (one may have awaited aclose()) get their grace.
            loop.run_until_complete(self._let_app_tasks_finish(skip=set()))
            leftovers = asyncio.all_tasks(loop)
            for task in leftovers:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
            self._stopped.set()

    # -- posting work to the I/O loop ------------------------------------------------------

    def post(self, fn: Callable[..., object], *args: Any) -> bool:
        """Run ``fn(*args)`` on the I/O loop soon, from any thread; False once it accepts
        no more work (shut down, or the app's loop has ended). Starts the I/O thread."""
        with self._lock:
            if not self._accepting:
                return False
            loop = self._loop if self._loop is not None else self._start_io()
            return self._schedule(loop, fn, args)

    def _schedule(
        self, loop: asyncio.AbstractEventLoop, fn: Callable[..., object], args: Any
    ) -> bool:
        try:
            if self.on_io_thread():
                loop.call_soon(fn, *args)
            else:
                loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the app's loop was closed under us
            return False
        return True

    def start(self, coro: Coroutine[Any, Any, Any]) -> bool:
        """Run a call's coroutine as a task on the I/O loop; False if it accepts no more work
        (the caller then closes ``coro`` and settles the call itself)."""
        if self.on_io_thread():  # the loop is where `_accepting` changes: no race here
            if not self._accepting:
                return False
            self._track(coro, self._io_tasks)
            return True
        return self.post(self._track, coro, self._io_tasks)

    def spawn(self, awaitable: Awaitable[Any], on_error: Callable[[BaseException], None]) -> None:
        """Run an app coroutine (an async listener or receiver) on the I/O loop."""
        coro = self._guard(awaitable, on_error)
        if self.on_io_thread():  # tracked at once, so that a shutdown starting now waits for it
            self._track(coro, self._app_tasks)
        elif not self.post(self._track, coro, self._app_tasks) and not self._on_running_app_loop(
            self._track, coro, self._app_tasks
        ):
            coro.close()
            if isinstance(awaitable, Coroutine):
                awaitable.close()
            on_error(RuntimeError("the core is closed: no event loop is left to run it on"))

    async def _guard(
        self, awaitable: Awaitable[Any], on_error: Callable[[BaseException], None]
    ) -> None:
        """Report what an app coroutine raises, so that nothing escapes into the I/O loop."""
        _app_task.set(asyncio.current_task())  # this task's own context, and its children's
        try:
            await awaitable
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # cancelled from outside (the shutdown's grace ran out)
            on_error(asyncio.CancelledError())  # raised by the app's own code
        except self.fatal:
            raise
        except BaseException as exc:
            on_error(exc)

    def _track(self, coro: Coroutine[Any, Any, Any], tasks: set[asyncio.Future[Any]]) -> None:
        """On the I/O loop: start ``coro``, holding the task in ``tasks`` until it ends."""
        assert self._loop is not None
        task = self._loop.create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def _on_running_app_loop(self, fn: Callable[..., object], *args: Any) -> bool:
        """asyncio mode, once the Core is closed: the app's loop still runs listeners while it
        runs at all (a closed Core does not take the app's loop with it)."""
        loop = self._loop
        if self.mode != "asyncio" or loop is None or not loop.is_running():
            return False
        return self._schedule(loop, fn, args)

    # -- listeners -------------------------------------------------------------------------

    def deliver(self, fn: Callable[[], None]) -> None:
        """Arrange for ``fn`` to run where this mode runs listeners; never raises, never drops.

        When no loop is left to run it on (the Core was closed, or its loop has ended), it runs
        right here, on the caller's thread, before this returns.
        """
        if self.mode == "frame":
            self.queue.put(fn)
        elif not self.post(fn) and not self._on_running_app_loop(fn):
            fn()

    # -- shutdown --------------------------------------------------------------------------

    def stop(self, *, timeout: float = 5, quiet: bool = False) -> None:
        """Refuse new work, cancel the calls, let listeners and async listeners finish, await
        ``final``, then end the I/O thread. Idempotent: a later caller waits for the first.

        It never waits on the loop it would wait for (a listener on the I/O thread, or asyncio
        code on the app's loop: await `finished` there). ``quiet``: a timeout is not a warning.
        """
        with self._lock:
            first, self._stopping = not self._stopping, True
            loop = self._loop
            if loop is None:  # nothing was ever started
                self._accepting = False
                self._stopped.set()
                return
        if first and self.mode == "asyncio":
            self._stop_app_loop(loop)
        elif first:
            self._schedule(loop, self._begin_shutdown, ())
        elif self.mode == "asyncio" and loop.is_closed() and not self._stopped.is_set():
            self._give_up()  # asked for earlier, but the app closed its loop before it ran
        if not self.on_io_thread() and not self._wait_stopped(loop, timeout):
            log.log(
                logging.DEBUG if quiet else logging.WARNING,
                "the corelogin I/O loop did not shut down within %g s",
                timeout,
            )

    def _wait_stopped(self, loop: asyncio.AbstractEventLoop, timeout: float) -> bool:
        """Wait for the shutdown; in asyncio mode only while the app's loop runs (on an idle
        loop it runs when the app runs that loop again, or as the loop ends)."""
        deadline = time.monotonic() + timeout
        while not self._stopped.wait(0.05):
            if self.mode == "asyncio" and not loop.is_running():
                return True
            if time.monotonic() > deadline:
                return False
        return True

    def _begin_shutdown(self) -> asyncio.Future[None]:
        assert self._loop is not None
        self._closing = closing = self._loop.create_task(self._shutdown())
        # If the app closes its loop with this still pending, the coroutine's own GeneratorExit
        # path drops the session: "Task was destroyed but it is pending" would be noise.
        closing._log_destroy_pending = False  # type: ignore[attr-defined]
        return closing

    def _stop_app_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """asyncio mode: the shutdown runs on the app's loop, and only on the thread that runs
        it: posted there, or, when that loop is idle and this is the thread that made the Core
        in it, run here. If the loop ends first, the watcher task runs it as the loop ends."""
        if self.on_io_thread():
            self._begin_shutdown()  # awaited by aclose() through `finished`
            return
        if loop.is_closed():
            self._give_up()
            return
        try:
            if not loop.is_running() and self.on_delivery_thread():
                loop.run_until_complete(self._begin_shutdown())
            else:  # a callback, not a coroutine: if that loop never runs again, nothing dangles
                loop.call_soon_threadsafe(self._begin_shutdown)
        except RuntimeError:  # closed meanwhile, or another loop runs on this thread
            self._give_up()

    def _give_up(self) -> None:
        """No loop is left to shut down on: drop the session without one."""
        with self._lock:
            self._accepting = False
        self._abandon()
        self._stopped.set()

    async def _shutdown(self) -> None:
        if self._shut_down:  # it runs once; a second caller (the watcher) waits for the first
            closing = self._closing
            if closing is not None and not closing.done():
                await asyncio.shield(closing)
            return
        self._shut_down = True
        self._closing = asyncio.current_task()
        with self._lock:
            self._accepting = False
        try:
            await self._wind_down()
        except GeneratorExit:  # the app closed its loop with this pending: nothing can await
            self._abandon()
            self._stopped.set()
            raise
        except BaseException:  # cancelled: asyncio.run cancels every task as its loop ends
            await self._close_session()
            raise
        await self._close_session()

    async def _wind_down(self) -> None:
        """Run what was posted, cancel the calls, give async listeners their grace."""
        await asyncio.sleep(0)  # what was posted before the shutdown has run when this resumes
        calls = list(self._io_tasks)
        for task in calls:
            task.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
        await self._let_app_tasks_finish(skip=self._closers)

    async def _close_session(self) -> None:
        """Await ``final``, then end: the app's loop goes on; the I/O thread's loop stops."""
        try:
            await self._final()
        except GeneratorExit:  # the app closed its loop under the close: nothing can await
            self._abandon()
            self._stopped.set()
            raise
        except asyncio.CancelledError:  # the loop is being torn down under the close
            self._abandon()
            self._end()
            raise
        except Exception:
            log.warning("closing the HTTP session failed", exc_info=True)
        self._end()

    def _end(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        if self.mode == "asyncio":
            self._stopped.set()
        else:
            asyncio.get_running_loop().stop()

    async def _let_app_tasks_finish(self, skip: set[asyncio.Future[Any]]) -> None:
        """Give async listeners `grace` seconds, then cancel them with a warning; those in
        ``skip`` await the shutdown itself (``await core.aclose()`` in a listener)."""
        deadline = time.monotonic() + self.grace
        while waiting := self._app_tasks - skip:  # listeners end, start more, or await aclose()
            remaining = deadline - time.monotonic()
            if remaining > 0:  # look again at least every 50 ms: `skip` may have grown
                await asyncio.wait(
                    waiting, timeout=min(remaining, 0.05), return_when="FIRST_COMPLETED"
                )
                continue
            for task in waiting:
                log.warning("an async listener was still running at close(): cancelled")
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)

    async def _watch_app_loop(self) -> None:
        """asyncio mode: a task that lives as long as the Core, so that when the app's loop
        ends without ``aclose()`` (``asyncio.run`` cancels every task) the session is closed
        on that loop while it still can be, and later calls get 817 without it."""
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            with self._lock:
                self._stopping = True
            await self._shutdown()  # unless it ran already, or is running now
            raise

    async def finished(self) -> None:
        """On the app's loop: wait for the shutdown, whichever thread started it."""
        me = asyncio.current_task()
        closers = {task for task in (me, _app_task.get()) if task is not None}
        self._closers |= closers
        try:
            while self._stopping and not self._stopped.is_set():
                closing = self._closing
                if closing is not None and closing.done():
                    return  # it has run (in thread mode the I/O thread ends the loop next)
                if closing is not None:
                    await asyncio.shield(closing)  # cancelling the wait leaves the shutdown be
                else:  # posted from another thread, and not started yet
                    await asyncio.sleep(0.005)
        finally:
            self._closers -= closers

    def dispose(self) -> None:
        """Shut down a `Core` that nobody closed: it was garbage-collected, or the program is
        exiting. Quiet, and it never waits on the loop it would wait for."""
        left = len(self.queue)
        if left:
            log.warning(
                "%d corelogin listener(s) never ran: the Core was dropped without "
                "process_events() or close() on the thread that made it",
                left,
            )
        self.stop(timeout=self.grace + 1, quiet=True)
