"""A trio program: calls are awaited without blocking trio's loop; listeners run on its thread.

Inside ``trio.run`` there is no asyncio loop, so the Core delivers in frame mode: its I/O runs
on its own thread. ``await request`` works under trio, and ``corelogin.trio.run_listeners``
(started in the nursery) runs the listeners of calls that are not awaited, as they arrive.
A heartbeat task ticks all along, to show that trio's loop never waits for the network.

It asks for a name and a password (``--auto`` answers by itself), signs up, tries a wrong
password, then logs in twice: once awaited, once with only a listener.

    python samples/trio_login.py [--auto] [--server URL --key KEY]
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Iterator

import _server
import trio

import corelogin
import corelogin.trio


def answers(auto: bool, username: str) -> Iterator[str]:
    """What the user types: from the keyboard, or scripted with --auto (and echoed)."""
    if auto:
        print(username)
        yield username
        print("*" * len(_server.PASSWORD))
        yield _server.PASSWORD
        return
    while True:
        yield input()


async def ask(prompt: str, typed: Iterator[str]) -> str:
    print(prompt, end="", flush=True)
    # input() blocks: trio runs it on a worker thread, and the loop goes on meanwhile.
    return await trio.to_thread.run_sync(next, typed)


async def heartbeat(ticks: list[int]) -> None:
    while True:
        await trio.sleep(0.005)
        ticks[0] += 1


async def session(core: corelogin.Core, typed: Iterator[str], ticks: list[int]) -> bool:
    print(f"deliver={core.deliver!r} (trio has no asyncio loop)")
    username = await ask("username: ", typed)
    password = await ask("password: ", typed)
    params = {"username": username, "password": password}
    ticks[0] = 0  # count from the first call on: only while the calls are out

    created = await core.users.create(params)
    if created.error:
        print(f"create: evt.status={created.status} evt.error={created.error!r}")
        return False
    print(f"create: evt.result.username={created.result.username}")

    wrong = await core.users.login({**params, "password": "not my password"})
    print(f"login: evt.status={wrong.status} evt.error={wrong.error!r}")

    awaited = await core.users.login(params)
    if awaited.error:
        print(f"login: evt.status={awaited.status} evt.error={awaited.error!r}")
        return False
    print(f"awaited: evt.result.user_id={awaited.result.user_id} ({awaited.tt:.0f} ms)")

    heard = trio.Event()

    def on_login(evt: corelogin.Event[corelogin.Login]) -> None:
        where = threading.current_thread().name
        if evt.error:
            print(f"listener: evt.status={evt.status} evt.error={evt.error!r} (on {where})")
        else:
            print(f"listener: evt.result.user_id={evt.result.user_id} (on {where})")
        heard.set()

    core.users.login(params, on_login)  # not awaited: run_listeners delivers it
    with trio.fail_after(30):
        await heard.wait()
    return True


async def main(url: str, key: str, typed: Iterator[str]) -> bool:
    ticks = [0]
    with corelogin.init(url, key) as core:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(corelogin.trio.run_listeners, core)
            nursery.start_soon(heartbeat, ticks)
            ok = await session(core, typed, ticks)
            nursery.cancel_scope.cancel()
    print(f"heartbeat: {ticks[0]} ticks while the calls were in flight")
    return ok


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="corelogin in a trio program.")
    parser.add_argument("--auto", action="store_true", help="answer the prompts by itself")
    args = _server.parse_args(parser)
    with _server.server(args) as (url, key):
        typed = answers(args.auto, _server.new_username())
        raise SystemExit(0 if trio.run(main, url, key, typed) else 1)
