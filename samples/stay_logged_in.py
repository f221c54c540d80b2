"""Skip the login screen on the next start: ``stay_logged_in``, then ``restore``.

A game's frame loop calls ``core.process_events()`` once a frame. On its first start the player
logs in with a password and ``stay_logged_in``: the session is saved (a 0600 file). On the next
start ``core.users.has_saved_login`` says so without the network, and ``restore`` logs the
player in with no password. Logging out clears the saved copy.

This sample makes both starts, one after the other (two Cores on one session file), then logs
out:

    python samples/stay_logged_in.py [--store FILE] [--server URL --key KEY]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _server

import corelogin

FPS = 60


def run_frames(core: corelogin.Core, done: list[corelogin.Event], seconds: float = 10) -> None:
    """The game's loop: draw a frame, run the listeners that are ready, until an event came."""
    deadline = time.monotonic() + seconds
    while not done and time.monotonic() < deadline:
        core.process_events()  # listeners run here, on the game's own thread
        time.sleep(1 / FPS)


def start_game(url: str, key: str, store: corelogin.SessionStore, username: str) -> None:
    """One start of the game: restore the saved login if there is one, else log in."""
    with corelogin.init(url, key, session_store=store) as core:
        done: list[corelogin.Event] = []
        if core.users.has_saved_login:
            print("saved login found: restoring it (no password)")
            core.users.restore(done.append)
        else:
            print("no saved login: logging in with the password, staying logged in")
            params = {"username": username, "password": _server.PASSWORD, "stay_logged_in": True}
            core.users.login(params, done.append)
        run_frames(core, done)
        (evt,) = done
        if evt.error:
            print(f"   evt.status={evt.status} evt.error={evt.error!r}")
        else:
            print(f"   {evt.name}: evt.result.username={evt.result.username}")


def main(args: argparse.Namespace) -> int:
    with _server.server(args) as (url, key), tempfile.TemporaryDirectory() as tmp:
        store = corelogin.FileSessionStore(args.store or Path(tmp) / "sessions.json")
        username = _server.new_username()
        with corelogin.init(url, key, session_store=None) as core:
            created = core.users.create({"username": username, "password": _server.PASSWORD})
            assert created.result(10).error is None
        start_game(url, key, store, username)  # the first start
        start_game(url, key, store, username)  # the next start: no password asked
        with corelogin.init(url, key, session_store=store) as core:
            done: list[corelogin.Event] = []
            core.users.logout(done.append)
            run_frames(core, done)
            print(f"logged out: {done[0].result}; saved login kept: {core.users.has_saved_login}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", help="the session file (default: a temporary one)")
    raise SystemExit(main(_server.parse_args(parser)))
