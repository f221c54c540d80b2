"""Listening to login activity with signals instead of (or besides) per-call listeners.

Every `corelogin.signals` signal is sent with the Core as sender and the Event as ``event=``,
on the thread where listeners run. `corelogin.signals.subscribe` connects a receiver strongly
(plain blinker ``connect`` holds it weakly) and returns a function that disconnects it.

    python samples/signal_subscriber.py [--server URL --key KEY]
"""

from __future__ import annotations

import argparse
import threading

import _server

import corelogin
from corelogin import signals


def on_user_created(sender: corelogin.Core, *, event: corelogin.Event) -> None:
    print(f"signal user_created: evt.result.username={event.result.username}")


def on_login(sender: corelogin.Core, *, event: corelogin.Event) -> None:
    thread = threading.current_thread().name
    print(f"signal login: evt.result.user_id={event.result.user_id} (on {thread})")


def on_login_failed(sender: corelogin.Core, *, event: corelogin.Event) -> None:
    print(f"signal login_failed: evt.status={event.status} evt.error={event.error!r}")


def main(args: argparse.Namespace) -> int:
    unsubscribe = [
        signals.subscribe(signals.user_created, on_user_created),
        signals.subscribe(signals.login, on_login),
        signals.subscribe(signals.login_failed, on_login_failed),
    ]
    try:
        with _server.server(args) as (url, key), corelogin.init(url, key) as core:
            username = _server.new_username()
            # No listeners here: the receivers above see every call of every Core. (Pass
            # sender=core to subscribe() to hear from one Core only.)
            core.users.create({"username": username, "password": _server.PASSWORD}).result(10)
            core.users.login({"username": username, "password": _server.PASSWORD})
            core.users.login({"username": username, "password": "wrong password"})
            core.users.login({"username": username})  # 804 at once, without a round trip
            if not core.wait(timeout=10):  # runs the receivers on this thread as events arrive
                print("timed out")
                return 1
    finally:
        for disconnect in unsubscribe:
            disconnect()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(_server.parse_args(argparse.ArgumentParser())))
