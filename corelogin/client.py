"""`Core`: one connection to a corelogin server, made by `init`."""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import threading
import weakref
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any, Final, Literal

from corelogin import signals
from corelogin.delivery import MODES, Mode, Runtime
from corelogin.models import Event
from corelogin.request import Listener, Request, failure_event
from corelogin.session import DEFAULT_STORE, SessionState, _Default
from corelogin.sessionstore import SessionStore
from corelogin.transport import Retry, Transport
from corelogin.users import CallSpec, Users
from corelogin.wire import (
    APPLE,
    FACEBOOK,
    GOOGLE,
    OPENUDID,
    ApiError,
    Status,
    check_params,
    check_scope,
)

__all__ = ["Core", "init"]

log = logging.getLogger("corelogin")


Deliver = Literal["auto", "asyncio", "frame", "thread"]


def init(
    server: str,
    key: str,
    scope: str = "default",
    timeout: float = 30,
    *,
    deliver: Deliver = "auto",
    retries: int = 2,
    admin_key: str | None = None,
    session_store: SessionStore | _Default | None = DEFAULT_STORE,
) -> Core:
    """Connect to a corelogin server (nothing is sent until the first call).

    ``deliver="auto"`` picks ``"asyncio"`` when called inside a running loop and ``"frame"``
    otherwise; see `Core` for the modes. ``admin_key`` lets trusted back-end code act on any
    user of the scope: never ship it in a game.
    """
    return Core(
        server,
        key,
        scope,
        timeout,
        deliver=deliver,
        retries=retries,
        admin_key=admin_key,
        session_store=session_store,
    )


class Core(SessionState):
    """The SDK's entry point: ``core.users`` holds the calls.

    Delivery modes: ``asyncio`` (I/O and listeners on the app's loop), ``frame`` (I/O on a
    daemon thread; listeners run on the creating thread in `process_events`, `wait` or
    ``request.result``), ``thread`` (listeners on the I/O thread). Calls are safe from any
    thread. Use as a context manager, or call `close`.
    """

    def __init__(
        self,
        server: str,
        key: str,
        scope: str = "default",
        timeout: float = 30,
        *,
        deliver: Deliver = "auto",
        retries: int = 2,
        admin_key: str | None = None,
        session_store: SessionStore | _Default | None = DEFAULT_STORE,
    ) -> None:
        if not isinstance(server, str) or not server.startswith(("http://", "https://")):
            raise ValueError("server must be an http:// or https:// URL")
        if not isinstance(key, str) or not key:
            raise ValueError("key must be a non-empty string")
        try:
            self.scope = check_scope(scope)
        except ApiError as exc:
            raise ValueError(exc.message) from None
        self.timeout = _check_timeout(timeout)
        if not isinstance(retries, int) or retries < 0:
            raise ValueError("retries must be a non-negative integer")
        if admin_key is not None and (not isinstance(admin_key, str) or not admin_key):
            raise ValueError("admin_key must be a non-empty string (or None)")
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        mode: Mode
        if deliver == "auto":
            mode = "asyncio" if loop is not None else "frame"
        elif deliver in MODES:
            mode = deliver
        else:
            raise ValueError(f"deliver must be one of auto, {', '.join(MODES)}")
        if mode == "asyncio" and loop is None:
            raise RuntimeError("deliver='asyncio' needs a running loop: call init() inside it")
        self.server = server
        self._transport = Transport(server, key, Retry(attempts=retries))
        self._admin_key = admin_key
        self._init_session(server, self.scope, session_store)
        self._frame = mode == "frame"  # read on every call's path
        self._runtime = Runtime(
            mode,
            loop if mode == "asyncio" else None,
            final=self._transport.close,
            abandon=self._transport.abandon,
        )
        # A Core dropped without close(), or still open at exit, shuts down quietly.
        self._finalizer = weakref.finalize(self, self._runtime.dispose)
        # Guards the Core's and its requests' state; blocking waits sleep on it.
        self._cond = threading.Condition()
        self._pending: set[Request[Any]] = set()  # calls whose listener has not run yet
        self._closed = False
        self.users = Users(self)

    # The provider names, here too because the Lua examples write ``core.FACEBOOK``.
    FACEBOOK: Final = FACEBOOK
    GOOGLE: Final = GOOGLE
    APPLE: Final = APPLE
    OPENUDID: Final = OPENUDID

    def __repr__(self) -> str:
        return f"<Core {self.server} scope={self.scope!r} deliver={self.deliver!r}>"

    @property
    def deliver(self) -> Mode:
        """Where listeners run: ``"asyncio"``, ``"frame"`` or ``"thread"``."""
        return self._runtime.mode

    @property
    def closed(self) -> bool:
        return self._closed

    # -- calls -----------------------------------------------------------------------------

    def _call(
        self,
        spec: CallSpec,
        params: Any,
        listener: Any,
        *,
        token: str | None = None,
        local: Callable[[Request[Any]], Event[Any]] | None = None,
    ) -> Request[Any]:
        """Send a call (with ``token`` as its session, when given); or, with ``local``, give
        the event it makes at once, without the network."""
        if listener is not None and not callable(listener):
            if not isinstance(params, Mapping):  # login("Donna", "pw"), Backendless style
                raise TypeError(
                    f"params must be a table (a dict), then the listener: core.users.{spec.name}"
                    '({"username": ..., "password": ...}, listener)'
                )
            raise TypeError("listener must be callable (or None)")
        if self._frame and inspect.iscoroutinefunction(listener):
            raise TypeError(_ASYNC_IN_FRAME_MODE)
        request: Request[Any] = Request(
            self, spec.name, partial(self._deliver, listener, spec), self._cond
        )
        with self._cond:
            self._pending.add(request)
            closed = self._closed
        if local is not None:
            self._settle(request, local(request))
            return request
        try:
            timeout = self._timeout_for(params)
            body = check_params(spec.name, params)
        except ApiError as exc:  # answered at once, without the network
            self._settle(request, failure_event(request, exc.status, exc.message))
            return request
        except Exception as exc:  # params no check foresaw: still one event, never a raise
            message = f"params could not be checked ({type(exc).__name__})"
            self._settle(request, failure_event(request, Status.WRONG_TYPE, message))
            return request
        body["scope"] = self.scope
        send = self._send(request, spec, body, timeout, token)
        if closed or not self._runtime.start(send):  # closed, maybe by another thread just now
            send.close()
            self._settle(request, failure_event(request, Status.CANCELLED, "the core is closed"))
        return request

    def _timeout_for(self, params: Mapping[str, Any]) -> float:
        if not isinstance(params, Mapping) or params.get("timeout") is None:
            return self.timeout
        try:
            return _check_timeout(params["timeout"])
        except ValueError as exc:
            raise ApiError(Status.WRONG_TYPE, str(exc)) from None

    async def _send(
        self,
        request: Request[Any],
        spec: CallSpec,
        body: dict[str, Any],
        limit: float,
        token: str | None = None,
    ) -> None:
        request._task = asyncio.current_task()
        if request._event is not None:  # cancelled before it started
            return
        # The time limit settles the call (816) and cancels this task; a plain timer is cheaper
        # than asyncio.timeout(), and the first outcome wins anyway.
        expiry = asyncio.get_running_loop().call_later(limit, self._expire, request, limit)
        apply: Callable[[], None] | None = None
        try:
            if token is not None:
                headers: dict[str, str] | None = {"Authorization": f"Bearer {token}"}
            else:
                token = self._session_token if spec.about_a_user else None
                headers = self._credentials() if spec.about_a_user else None
            payload = await self._transport.post(spec.path, body, headers)
            result = spec.parse(payload["result"])
            event = Event(spec.name, result=result, tt=request._elapsed_ms())
            if spec.opens_session:
                session = payload.get("session")
                apply = partial(self._open_session, result, session, body.get("stay_logged_in"))
            elif spec.name == "restore":
                apply = partial(self._restored, result, token)
            elif spec.name == "is_valid_login" and result is False and token is not None:
                apply = partial(self._session_gone, request, token)
            elif spec.about_a_user:
                apply = partial(self._user_changed, spec.name, body["user_id"], result)
        except ApiError as exc:
            event = failure_event(request, exc.status, exc.message, exc.retry_after)
            if exc.status == Status.SESSION_INVALID and token is not None:
                apply = partial(self._session_gone, request, token)
        except ValueError as exc:
            event = failure_event(request, Status.INVALID_RESULT, f"invalid result: {exc}")
        except asyncio.CancelledError:
            self._settle(request, failure_event(request, Status.CANCELLED, "cancelled"))
            raise
        except Exception as exc:
            log.exception("unexpected error in a %s call", spec.name)
            event = failure_event(request, Status.SERVER_ERROR, f"unexpected client error: {exc!r}")
        finally:
            expiry.cancel()
        # On the I/O loop: where asyncio and thread modes run listeners, so run it right here.
        self._settle(request, event, apply, here=not self._frame)

    def _settle(
        self,
        request: Request[Any],
        event: Event[Any],
        apply: Callable[[], None] | None = None,
        *,
        here: bool = False,
    ) -> bool:
        """Give ``request`` its one Event; False if another outcome already won.

        ``here``: the caller is on the delivery thread, so the listener runs now, before any
        awaiter wakes (else it is queued where the mode runs listeners).
        """
        if not request._claim(event):
            return False
        try:
            if apply is not None:
                apply()  # state first: listeners and signals see it already changed
            if here:
                request._handler(request, event)
            elif self._frame:
                self._runtime.deliver(request._later(event))
            else:
                self._runtime.deliver(partial(request._handler, request, event))
        finally:  # awaiters wake even when a listener's KeyboardInterrupt goes on to the app
            request._publish()
        return True

    def _deliver(
        self,
        listener: Listener[Any] | None,
        spec: CallSpec,
        request: Request[Any],
        event: Event[Any],
    ) -> None:
        """Runs where listeners run: the listener, then the call's signal, each isolated."""
        spawn = partial(self._spawn, event)
        fatal = self._runtime.fatal
        frame = self._frame
        if frame:
            # The creating thread waits by running listeners: once this one has started, a
            # wait() or result() nested in it must not wait for it. (Marked once: nobody in
            # frame mode waits for a listener to have finished.)
            self._mark_delivered(request)
        try:
            if listener is not None:
                try:
                    outcome = listener(event)
                    if outcome is not None and inspect.isawaitable(outcome):
                        spawn(outcome)
                except fatal:
                    raise  # Ctrl-C or sys.exit() on the app's own thread: the app's to handle
                except BaseException as exc:
                    signals.report_error(self, event, exc, spawn, source="a listener", fatal=fatal)
            signal = spec.failure if event.is_error else spec.success
            if signal is not None:
                signals.send(signal, self, event, spawn, fatal=fatal)
            if request._session_expired:
                signals.send(signals.session_expired, self, event, spawn, fatal=fatal)
        finally:
            if not frame:
                self._mark_delivered(request)

    def _mark_delivered(self, request: Request[Any]) -> None:
        with self._cond:
            request._delivered = True
            self._pending.discard(request)
            self._cond.notify_all()

    def _spawn(self, event: Event[Any], awaitable: Awaitable[Any]) -> None:
        """Where coroutines returned by listeners and receivers go: a task on the loop in
        asyncio and thread modes; refused in frame mode, whose listeners must be plain."""
        spawn = partial(self._spawn, event)

        def report(exc: BaseException) -> None:
            signals.report_error(self, event, exc, spawn, source="an async listener or receiver")

        if self._frame:
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            report(TypeError(_ASYNC_IN_FRAME_MODE))
        else:
            self._runtime.spawn(awaitable, report)

    def cancel(self, request: Request[Any]) -> bool:
        """Cancel ``request``: its listener gets 817. False if it had already finished."""
        return self._cancel(self._own(request, "cancel()"), "cancelled")

    def _cancel(self, request: Request[Any], why: str, status: int = Status.CANCELLED) -> bool:
        """Settle ``request`` with ``status`` unless it is settled already, and stop its task."""
        if not self._settle(request, failure_event(request, status, why)):
            return False
        task = request._task
        if task is not None:
            self._runtime.post(task.cancel)  # refused once shut down: nothing runs by then
        return True

    def _expire(self, request: Request[Any], limit: float) -> None:
        self._cancel(request, f"no answer within {limit:g} s", Status.TIMED_OUT)

    def _own(self, request: Request[Any], what: str) -> Request[Any]:
        if not isinstance(request, Request):
            raise TypeError(f"{what} takes a Request, not {type(request).__name__}")
        if request._core is not self:
            raise ValueError(
                f"{what}: this request belongs to another Core; use request.cancel() or "
                "that Core's methods"
            )
        return request

    # -- delivery --------------------------------------------------------------------------

    def process_events(self) -> int:
        """Run the listeners that are ready (frame mode; call it once a frame).

        Never blocks; returns how many ran. In the other modes listeners run by themselves
        and this returns 0.
        """
        if not self._frame:
            return 0
        self._require_delivery_thread("process_events()")
        return self._runtime.queue.run_ready()

    def set_wakeup(self, wakeup: Callable[[], object] | None) -> None:
        """Frame mode: have ``wakeup()`` called whenever a listener is queued, so that an event
        loop can call `process_events` at once instead of polling (None removes it).

        It is called from the thread that queues the listener: mostly the I/O thread, but the
        calling thread for a call decided at once (a bad parameter, a closed Core) and here if
        listeners already wait. So it must be thread-safe and quick: post a message to your
        loop and return (Qt: emit a signal; trio: ``token.run_sync_soon``). `corelogin.qt` and
        `corelogin.trio` do this for you. One wakeup at a time: RuntimeError if another is set.
        A wakeup that raises is logged (a warning the first time) and the listener stays queued.
        """
        if not self._frame:
            raise RuntimeError(
                f"set_wakeup() is for frame mode; this Core delivers {self.deliver!r}"
            )
        if wakeup is not None and not callable(wakeup):
            raise TypeError("wakeup must be callable (or None)")
        self._runtime.queue.set_wakeup(wakeup)

    def wait(self, request: Request[Any] | None = None, timeout: float | None = None) -> bool:
        """Block until ``request`` (or, with None, every call in flight) has been delivered,
        running listeners meanwhile if this is the thread they run on. False on timeout."""
        if request is not None:
            if not isinstance(request, Request):
                raise TypeError("wait() takes a Request or None first; pass timeout=... by name")
            self._own(request, "wait()")
            try:
                self._wait_request(request, timeout)
            except TimeoutError:
                return False
            return True
        self._check_can_block("core.wait()")
        if self._frame and self._runtime.on_delivery_thread():
            return self._runtime.queue.run_until(lambda: not self._pending, timeout)
        if self._frame:  # another thread: the listeners are not its business
            return self._block_until(lambda: all(r.done() for r in self._pending), timeout)
        return self._block_until(lambda: not self._pending, timeout)

    def _block_until(self, condition: Callable[[], bool], timeout: float | None) -> bool:
        with self._cond:
            return self._cond.wait_for(condition, timeout)

    def _wait_request(self, request: Request[Any], timeout: float | None) -> Event[Any]:
        self._check_can_block("request.result()")
        if self._frame:
            if self._runtime.on_delivery_thread():
                finished = self._runtime.queue.run_until(lambda: request._delivered, timeout)
            else:  # the listener is the creating thread's business
                finished = self._block_until(lambda: request._settled, timeout)
        else:
            finished = self._block_until(lambda: request._delivered, timeout)
        if not finished:
            raise TimeoutError(f"the {request.name} call did not finish within {timeout} s")
        assert request._event is not None
        return request._event

    def _check_can_block(self, what: str) -> None:
        if not self._frame and self._runtime.on_io_thread():
            hint = _ASYNCIO_HINT if self.deliver == "asyncio" else "do not block in a listener"
            raise RuntimeError(
                f"{what} would block the thread that must deliver the event (deadlock); {hint}"
            )

    def _require_delivery_thread(self, what: str) -> None:
        if not self._runtime.on_delivery_thread():
            raise RuntimeError(f"{what} must be called on the thread that created the Core")

    # -- closing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Cancel calls in flight (their listeners get 817), close the connection and stop the
        I/O thread. Idempotent. In frame mode, on the creating thread, the final events are
        delivered before it returns. Inside a running loop the connection can only close in
        the background: use ``await core.aclose()`` or ``async with`` there."""
        if self.deliver == "asyncio" and self._runtime.on_io_thread() and not self._closed:
            log.warning(
                "Core.close() inside the running loop closes the connection in the background; "
                "use `await core.aclose()` or `async with` to wait for it"
            )
        self._close()

    def _close(self) -> None:
        """Cancel what is pending, then shut the runtime down; a second close() (from any
        thread) waits for the first. In frame mode the creating thread then runs the final
        listeners; another thread says how many wait for it."""
        with self._cond:
            first, self._closed = not self._closed, True
            pending = list(self._pending) if first else []
        for request in pending:
            self._cancel(request, "cancelled: the core was closed")
        self._runtime.stop()
        if not self._frame:
            return
        if self._runtime.on_delivery_thread():
            # Every call is settled by now, so this ends as soon as their listeners have run.
            self._runtime.queue.run_until(lambda: not self._pending, timeout=5)
        elif first and len(self._runtime.queue):
            log.warning(
                "close() from another thread: %d listener(s) have not run; they run when the "
                "thread that made the Core calls process_events(), wait() or close()",
                len(self._runtime.queue),
            )

    async def aclose(self) -> None:
        """`close`, then wait for the connection to be closed (asyncio mode)."""
        self._close()
        await self._runtime.finished()

    def __enter__(self) -> Core:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Core:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


_ASYNCIO_HINT = (
    "use `await request`; or, if this is synchronous code that happens to run inside an event "
    'loop (sync Playwright, some GUI toolkits), make the Core with init(..., deliver="frame") '
    '(listeners run in process_events()) or deliver="thread"'
)

_ASYNC_IN_FRAME_MODE = (
    "async listeners and receivers need deliver='asyncio' or 'thread'; in frame mode "
    "listeners run on the creating thread, so use a plain function"
)


def _check_timeout(value: Any) -> float:
    problem = ValueError("timeout must be a positive number of seconds")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise problem
    try:
        seconds = float(value)
    except OverflowError:
        raise problem from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise problem
    return seconds
