"""An asyncio service: the Core lives on the service's own loop.

Made inside a running loop, `corelogin.init` picks ``deliver="asyncio"``: requests run on that
loop, listeners run on it too (and may be ``async def``), and every request can be awaited.
``--uvloop`` runs the very same code on uvloop's loop (``pip install corelogin[uvloop]``).

    python samples/asyncio_service.py [--uvloop] [--server URL --key KEY]
"""

from __future__ import annotations

import argparse
import asyncio

import _server

import corelogin


async def main(args: argparse.Namespace) -> int:
    async with _server.aserver(args) as (url, key), corelogin.init(url, key) as core:
        print(f"core: {core!r} on {type(asyncio.get_running_loop()).__module__}")
        username = _server.new_username()

        # `await request` gives the Event; no listener needed.
        evt = await core.users.create({"username": username, "password": _server.PASSWORD})
        if evt.error:
            print(f"create failed: evt.status={evt.status} evt.error={evt.error!r}")
            return 1
        print(f"created: evt.result.username={evt.result.username}")

        async def on_login(evt: corelogin.Event) -> None:
            """An async listener runs on this loop, so it may await (a database write...)."""
            await asyncio.sleep(0.01)
            if evt.error:
                print(f"listener: login failed, evt.status={evt.status} evt.error={evt.error!r}")
            else:
                print(f"listener: logged in, evt.result.user_id={evt.result.user_id}")

        # Two logins in flight at once: the right password and a wrong one.
        good, bad = await asyncio.gather(
            core.users.login({"username": username, "password": _server.PASSWORD}, on_login),
            core.users.login({"username": username, "password": "not my password"}, on_login),
        )
        print(f"awaited: evt.error={good.error} evt.result.user_id={good.result.user_id}")
        print(f"awaited: evt.status={bad.status} evt.error={bad.error!r} ({bad.tt:.1f} ms)")

        # `await request` resumes once an async listener has started, not finished; leaving
        # the `async with` lets listeners still running finish before the Core closes.
        print(f"logged_in_user: {core.users.logged_in_user!r}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="corelogin in an asyncio service.")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop's loop")
    args = _server.parse_args(parser)
    if args.uvloop:
        import uvloop

        raise SystemExit(uvloop.run(main(args)))
    raise SystemExit(asyncio.run(main(args)))
