"""corelogin quick start.

Starts the reference server in-process on a temporary SQLite file, creates a user through the
SDK, logs in by username and by email, shows a failed login, and prints each event the way the
Lua examples of Coronium Core do (``evt.error``, ``evt.status``, ``evt.result.user_id``).

    python samples/quickstart.py
"""

from __future__ import annotations

import secrets
import tempfile
from typing import Any

import corelogin
from corelogin.server import ServerConfig, ServerThread

PASSWORD = "correct horse battery staple"


def lua(value: Any) -> str:
    """Show a value as Lua's print would."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def on_event(evt: corelogin.Event) -> None:
    """The listener: called once per call, on this thread, when core.wait() runs it."""
    print(f"-- {evt.name} ({evt.tt:.0f} ms)")
    if evt.error:
        print(f"   evt.error  = {evt.error}")
        print(f"   evt.status = {evt.status}")
    else:
        for key in ("user_id", "username", "email", "active", "validated"):
            if key in evt.result:  # a login object has "validated"; a new user has not
                print(f"   evt.result.{key} = {lua(evt.result[key])}")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = ServerConfig(
            app_key=secrets.token_urlsafe(16), db=f"sqlite:///{tmp}/quickstart.sqlite3", port=0
        )
        with ServerThread(config) as server:
            print(f"reference server on {server.url}, SQLite in {tmp}")
            with corelogin.init(server=server.url, key=config.app_key, scope="default") as core:
                for call, params in [
                    (
                        core.users.create,
                        {"username": "Donna", "password": PASSWORD, "email": "tina@home.com"},
                    ),
                    (core.users.login, {"username": "Donna", "password": PASSWORD}),
                    (core.users.login, {"email": "Tina@Home.com", "password": PASSWORD}),
                    (core.users.login, {"username": "Donna", "password": "1234"}),
                    (core.users.login, {"username": "Donna"}),
                ]:
                    call(params, on_event)
                    core.wait()  # runs the listener here, like Corona between frames
                user = core.users.logged_in_user
                print(f"logged in as {user.username if user else None}")


if __name__ == "__main__":
    main()
