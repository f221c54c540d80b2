"""`Request`: the handle every call returns."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
import weakref
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Generic

from typing_extensions import TypeVar

from corelogin.models import Event

if TYPE_CHECKING:
    from corelogin.client import Core

__all__ = ["Listener", "Request"]

T = TypeVar("T", default=Any)

# What a call's listener may be: any callable taking its Event (``Listener[Login]``).
Listener = Callable[[Event[T]], object]


class Request(Generic[T]):
    """One call in flight: ``cancel()`` it, ``await`` it, or block on ``result()``.

    Generic in the call's result: ``core.users.login(...)`` is a ``Request[Login]``.

    Its Event is settled exactly once (the first of success, failure, timeout, cancel or close
    wins) and handed to the listener exactly once. Its state is guarded by the Core's one
    condition, on which blocking waiters sleep: a request costs no lock or event of its own.
    """

    __slots__ = (
        "__weakref__",
        "_cond",
        "_core",
        "_delivered",
        "_event",
        "_handler",
        "_session_expired",
        "_settled",
        "_started",
        "_task",
        "_waiters",
        "name",
    )

    def __init__(
        self,
        core: Core,
        name: str,
        handler: Callable[[Request[Any], Event[Any]], None],
        cond: threading.Condition,
    ) -> None:
        self.name = name
        self._core = core
        self._handler = handler  # runs the listener and signals, where the Core delivers
        self._cond = cond
        self._started = time.monotonic()
        self._event: Event[T] | None = None
        self._settled = False  # the Event is known
        # The server said 609 for the session the Core held, and this call found it out first.
        self._session_expired = False
        self._delivered = False  # the listener has run (frame mode: has started)
        self._waiters: list[Callable[[Event[T]], None]] = []
        self._task: asyncio.Future[Any] | None = None

    def __repr__(self) -> str:
        state = "done" if self.done() else "pending"
        return f"<Request {self.name} {state}>"

    def done(self) -> bool:
        """True once the Event is known (the listener may still be queued)."""
        return self._settled

    def cancel(self) -> bool:
        """Cancel the call: its listener gets status 817. False if it had already finished."""
        return self._core.cancel(self)

    def result(self, timeout: float | None = None) -> Event[T]:
        """Block until the Event is known and return it.

        On the thread that runs listeners (frame mode) this runs queued listeners while it
        waits, this call's own included. Raises `TimeoutError`, or `RuntimeError` where blocking
        would deadlock (inside the loop that must deliver it: use ``await request`` there).
        """
        return self._core._wait_request(self, timeout)

    def __await__(self) -> Generator[Any, None, Event[T]]:
        if _in_trio():  # first: a trio task in guest mode also sees its host's asyncio loop
            from corelogin.trio import wait  # only where trio is running

            return wait(self).__await__()
        return self._wait().__await__()

    async def _wait(self) -> Event[T]:
        loop = asyncio.get_running_loop()
        if self._delivered and self._core._runtime.on_io_thread():
            assert self._event is not None
            return self._event  # already delivered here: nothing to wait for
        future: asyncio.Future[Event[T]] = loop.create_future()

        def wake(event: Event[T]) -> None:
            same_loop = asyncio._get_running_loop() is loop
            if same_loop and self._delivered:
                _resolve(future, event)
            elif same_loop:  # after the listener, which is queued on this loop
                loop.call_soon(_resolve, future, event)
            elif not loop.is_closed():
                # If that loop ends just now, nobody waits there any more.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_resolve, future, event)

        self._add_waiter(wake)
        try:
            await future
        except BaseException:  # the await was cancelled (or its loop is ending): forget it
            self._discard_waiter(wake)
            raise
        return self._settled_event()

    def _settled_event(self) -> Event[T]:
        """The Event, once settled. On the thread that runs a frame-mode Core's listeners (an
        await in a loop of the app's, trio, terminal IPython), the queue runs first up to this
        call's listener, as ``result()`` does: an awaited Event's listener has always run."""
        runtime = self._core._runtime
        if runtime.mode == "frame" and runtime.on_delivery_thread():
            runtime.queue.run_until(lambda: self._delivered, timeout=0)  # it is queued: no wait
        assert self._event is not None
        return self._event

    # -- used by the Core ------------------------------------------------------------------

    def _elapsed_ms(self) -> float:
        return round((time.monotonic() - self._started) * 1e6) / 1e3  # ms, to the microsecond

    def _claim(self, event: Event[T]) -> bool:
        """Record ``event`` if no other outcome came first; True if this one won."""
        with self._cond:
            if self._event is not None:
                return False
            self._event = event
            return True

    def _publish(self) -> None:
        """Mark the claimed Event as known and wake whoever waits for it."""
        with self._cond:
            waiters, self._waiters = self._waiters, []
            event = self._event
            self._settled = True
            self._cond.notify_all()
        assert event is not None
        for wake in waiters:
            wake(event)

    def _later(self, event: Event[T]) -> Callable[[], None]:
        """What a frame-mode queue holds to run the listener: it refers to this request weakly,
        so that a Core dropped with listeners still queued (nobody can run them now) can be
        garbage-collected; while the Core lives, its pending set keeps the request alive."""
        ref = weakref.ref(self)

        def run() -> None:
            request = ref()
            if request is not None:
                request._handler(request, event)

        return run

    def _discard_waiter(self, wake: Callable[[Event[T]], None]) -> None:
        with self._cond:
            if wake in self._waiters:
                self._waiters.remove(wake)

    def _add_waiter(self, wake: Callable[[Event[T]], None]) -> None:
        with self._cond:
            if not self._settled:
                self._waiters.append(wake)
                return
            event = self._event
        assert event is not None
        wake(event)


def _in_trio() -> bool:
    """Is this a trio task? (trio 0.26+; never imports trio.)"""
    trio = sys.modules.get("trio")
    return trio is not None and bool(trio.lowlevel.in_trio_task())


def _resolve(future: asyncio.Future[Event[T]], event: Event[T]) -> None:
    if not future.done():
        future.set_result(event)


def failure_event(
    request: Request[Any], status: int, message: str, retry_after: int | None = None
) -> Event[Any]:
    """The error event of a call."""
    return Event(
        request.name,
        error=message,
        status=int(status),
        tt=request._elapsed_ms(),
        retry_after=retry_after,
    )
