"""A plain blocking script: call, then ``request.result(timeout)`` to wait for the Event.

With no running loop the Core does its I/O on a background thread; ``result()`` blocks until
the answer is in (running this call's listener, if it has one, on this thread meanwhile).

    python samples/blocking_script.py [--server URL --key KEY]
"""

from __future__ import annotations

import argparse

import _server

import corelogin


def on_login(evt: corelogin.Event) -> None:
    """A listener is optional; when given, it runs before ``result()`` returns."""
    print(f"listener: evt.name={evt.name} evt.error={evt.error} evt.status={evt.status}")


def main(args: argparse.Namespace) -> int:
    with _server.server(args) as (url, key), corelogin.init(url, key, timeout=10) as core:
        print(f"core: {core!r}")
        username = _server.new_username()

        created = core.users.create({"username": username, "password": _server.PASSWORD})
        evt = created.result(10)
        if evt.error:
            print(f"create failed: evt.status={evt.status} evt.error={evt.error!r}")
            return 1
        print(f"created: evt.result.username={evt.result.username}")

        request = core.users.login({"username": username, "password": _server.PASSWORD}, on_login)
        login = request.result(timeout=10)  # an Event[Login]; `evt` above is an Event[User]
        print(f"logged in: evt.result.user_id={login.result.user_id} ({login.tt:.1f} ms)")
        print(f"as a table: evt['result']['validated']={login['result']['validated']}")

        login = core.users.login({"username": username, "password": "nope"}).result(10)
        print(f"wrong password: evt.status={login.status} evt.error={login.error!r}")

        # Bad parameters are answered at once, without a round trip.
        login = core.users.login({"username": username}).result(10)
        print(f"no password: evt.status={login.status} evt.error={login.error!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(_server.parse_args(argparse.ArgumentParser())))
