"""trio: the SDK inside ``trio.run``, without blocking trio's loop.

A `Core` made in trio (which has no asyncio loop) delivers in frame mode: its I/O runs on its
own thread and listeners wait for trio's thread. Two things make that pleasant:

- ``await request`` works under trio (`Request` hands the wait to `wait` below): it sleeps on
  a trio event, woken by the I/O thread, and returns after the call's listener has run;
- `run_listeners(core)`, started in a nursery, runs listeners as soon as they are queued
  (woken through trio's token: no polling), so calls made with a listener and not awaited are
  delivered too, on trio's thread.

Nothing here is needed for asyncio or anyio on asyncio: there the Core uses the running loop.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

try:
    import trio
except ModuleNotFoundError as exc:  # say which extra, not just which module
    raise ModuleNotFoundError("corelogin.trio needs trio: pip install 'corelogin[trio]'") from exc

if TYPE_CHECKING:
    from corelogin.client import Core
    from corelogin.models import Event
    from corelogin.request import Request

__all__ = ["run_listeners", "wait"]

T = TypeVar("T")


class _Ready:
    """A reusable, level-triggered wakeup: `set` from trio's thread, `wait` clears it."""

    def __init__(self) -> None:
        self._event = trio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()
        self._event = trio.Event()


def _waker(token: trio.lowlevel.TrioToken, ready: _Ready) -> Any:
    """A thread-safe function that sets ``ready`` on trio's thread (once the run has ended,
    nobody waits any more, so it does nothing)."""

    def wake(*_: object) -> None:
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(ready.set, idempotent=True)

    return wake


async def wait(request: Request[T]) -> Event[T]:
    """``await request`` under trio: the call's Event, once its listener has run."""
    ready = _Ready()
    wake = _waker(trio.lowlevel.current_trio_token(), ready)
    request._add_waiter(wake)
    try:
        await ready.wait()
    finally:
        request._discard_waiter(wake)
    return request._settled_event()


async def run_listeners(core: Core) -> NoReturn:
    """Run ``core``'s listeners on trio's thread as they arrive, until cancelled.

    Start it in a nursery next to your code (``nursery.start_soon(run_listeners, core)``);
    the Core must have been made on this thread, in frame mode (the default inside trio).
    """
    if core.deliver != "frame":
        raise RuntimeError(
            f"run_listeners() is for frame mode; this Core delivers {core.deliver!r}"
        )
    core._require_delivery_thread("run_listeners()")
    ready = _Ready()
    wakeup = _waker(trio.lowlevel.current_trio_token(), ready)
    core.set_wakeup(wakeup)
    try:
        while True:
            core.process_events()
            await ready.wait()
    finally:
        core._runtime.queue.clear_wakeup(wakeup)
