"""Login activity as blinker signals.

Every signal is sent with the `Core` as sender and the `Event` as ``event=``, on the thread
where listeners run (so GUI code may touch widgets), after the state it reports has changed.
Each receiver is isolated: one that raises is logged and reported on `listener_error`, and the
others still run.

blinker holds receivers weakly by default: a lambda or a nested function connected with plain
``connect`` disappears as soon as nothing else refers to it. `subscribe` connects strongly.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from blinker import ANY, NamedSignal

if TYPE_CHECKING:
    from corelogin.models import Event

__all__ = [
    "listener_error",
    "login",
    "login_failed",
    "logout",
    "send",
    "session_expired",
    "session_restored",
    "subscribe",
    "user_created",
    "user_deleted",
    "user_updated",
]

log = logging.getLogger("corelogin")

login = NamedSignal("login", doc="A user logged in; event.result is the login object.")
login_failed = NamedSignal("login_failed", doc="A login call failed; see event.status.")
logout = NamedSignal("logout", doc="The logged-in user logged out.")
user_created = NamedSignal("user_created", doc="users.create succeeded.")
user_updated = NamedSignal("user_updated", doc="users.update succeeded.")
user_deleted = NamedSignal("user_deleted", doc="users.delete succeeded.")
session_restored = NamedSignal("session_restored", doc="A saved session was restored.")
session_expired = NamedSignal("session_expired", doc="The server no longer knows the session.")
listener_error = NamedSignal(
    "listener_error",
    doc="A listener or signal receiver raised; sent with event= and exception=.",
)


def subscribe(
    signal: NamedSignal, receiver: Callable[..., Any], *, sender: Any = ANY
) -> Callable[[], None]:
    """Connect ``receiver`` with a strong reference; returns a function that disconnects it."""
    signal.connect(receiver, sender=sender, weak=False)
    return lambda: signal.disconnect(receiver, sender=sender)


def send(
    signal: NamedSignal,
    sender: Any,
    event: Event[Any],
    spawn: Callable[[Any], None],
    *,
    fatal: tuple[type[BaseException], ...] = (),
    **extra: Any,
) -> None:
    """Call each receiver in isolation; awaitables a receiver returns are handed to ``spawn``.

    Whatever a receiver raises is reported, except the ``fatal`` kinds, which go on to the app.
    """
    if not signal.receivers:  # the common case, on every call's path
        return
    for receiver in list(signal.receivers_for(sender)):
        try:
            outcome = receiver(sender, event=event, **extra)
            if inspect.isawaitable(outcome):
                spawn(outcome)
        except fatal:
            raise
        except BaseException as exc:
            if signal is listener_error:  # never recurse on a failing listener_error receiver
                log.error("a receiver of listener_error raised", exc_info=exc)
            else:
                source = f"a receiver of {signal.name}"
                report_error(sender, event, exc, spawn, source=source, fatal=fatal)


def report_error(
    sender: Any,
    event: Event[Any],
    exc: BaseException,
    spawn: Callable[[Any], None],
    *,
    source: str,
    fatal: tuple[type[BaseException], ...] = (),
) -> None:
    """Log an exception raised by app code and send it on `listener_error`."""
    log.error("%s raised on a %r event", source, event.name, exc_info=exc)
    send(listener_error, sender, event, spawn, fatal=fatal, exception=exc)
