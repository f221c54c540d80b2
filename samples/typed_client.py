"""Typed listeners: every call's Event says what its result is, for your editor and for mypy.

``core.users.login(...)`` is a ``Request[Login]``; its listener gets an ``Event[Login]``, so
``evt.result.user_id`` completes in an editor and ``mypy --strict`` rejects
``evt.result.user_idd`` (CI checks this file with ``mypy --strict``). The small table results
are TypedDicts: ``evt.result["expires"]`` is an ``int``.

    python samples/typed_client.py [--auto] [--server URL --key KEY]

(``--auto`` is accepted for symmetry with the other samples: this one asks nothing.)
"""

from __future__ import annotations

import argparse
import asyncio

import _server

import corelogin
from corelogin import Event, Login, Request, User


def on_login(evt: Event[Login]) -> None:
    """A listener for login: the pattern every sample uses, type-checked."""
    if evt.error:
        print(f"listener: evt.status={evt.status} evt.error={evt.error!r}")
    else:
        print(f"listener: evt.result.user_id={evt.result.user_id} validated={evt.result.validated}")


class Profile:
    """Game state a bound-method listener fills in."""

    def __init__(self) -> None:
        self.name: str | None = None

    def on_created(self, evt: Event[User]) -> None:
        self.name = None if evt.error else evt.result.username


def blocking(url: str, key: str, username: str) -> str:
    """Frame mode (no running loop): ``result()`` returns the call's typed Event."""
    params = {"username": username, "password": _server.PASSWORD}
    profile = Profile()
    with corelogin.init(url, key) as core:
        created: Event[User] = core.users.create(params, profile.on_created).result(10)
        if created.error:  # the type says User; on an error, result is None: check first
            raise SystemExit(f"create: evt.status={created.status} evt.error={created.error!r}")
        print(f"blocking: created {created.result.username} ({created.result.created})")
        request: Request[Login] = core.users.login(params, on_login)
        login = request.result(10)
        if login.error:
            raise SystemExit(f"login: evt.status={login.status} evt.error={login.error!r}")
        user_id: str = login.result.user_id
        valid: Event[bool] = core.users.is_valid_login().result(10)
        print(f"blocking: profile.name={profile.name} is_valid_login={valid.result}")
        return user_id


async def awaiting(url: str, key: str, username: str) -> None:
    """asyncio mode: ``await`` gives the same typed Events."""
    async with corelogin.init(url, key) as core:
        login = await core.users.login({"username": username, "password": _server.PASSWORD})
        if login.error:
            print(f"awaited: evt.status={login.status}")
            return
        print(f"awaited: evt.result.username={login.result.username}")
        user = await core.users.get({"user_id": login.result.user_id})
        if user.error:
            print(f"awaited: get: evt.status={user.status}")
            return
        extra: dict[str, object] | None = user.result.extra
        print(f"awaited: get gives a User created at {user.result.created}, extra={extra}")


def main(args: argparse.Namespace) -> int:
    with _server.server(args) as (url, key):
        username = _server.new_username()
        user_id = blocking(url, key, username)
        asyncio.run(awaiting(url, key, username))
        print(f"user_id={user_id}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Typed listeners and results.")
    parser.add_argument("--auto", action="store_true", help="accepted; nothing is asked")
    raise SystemExit(main(_server.parse_args(parser)))
