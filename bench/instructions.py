"""What a login costs the client, in instructions: exact where timings on a shared machine are not.

Runs the client under ``valgrind --tool=callgrind`` (which counts instructions, the same count
for the same run whatever else the machine does) against a server subprocess with cheap hashes,
once with a few logins and once with more; the difference divided by the extra logins is the
cost of one login, start-up excluded. Three ways of making the same login:

- ``raw``: ``aiohttp.ClientSession.post`` of the very bytes the SDK sends, awaited in place;
- ``task``: the same post run as its own task and awaited through a future, which is the
  structure the SDK needs so that a call starts at once whether or not anybody awaits it;
- ``sdk``: ``await core.users.login(...)`` (asyncio mode).

    python bench/instructions.py [-n 40 240]

Needs valgrind (Debian: apt-get install valgrind); takes about two minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import _server
import aiohttp

import corelogin
from corelogin.wire import APP_KEY_HEADER, PATHS, check_params

WAYS = ("raw", "task", "sdk")
PARAMS = {"username": "bench", "password": _server.PASSWORD}


async def client(url: str, key: str, way: str, count: int) -> None:
    """The measured program: ``count`` logins made one way (after one of each, untimed)."""
    body = check_params("login", PARAMS)
    body["scope"] = "default"
    data = json.dumps(body).encode()
    headers = {APP_KEY_HEADER: key, "Content-Type": "application/json"}
    async with corelogin.init(url, key) as core, aiohttp.ClientSession() as session:

        async def raw() -> Any:
            async with session.post(url + PATHS["login"], data=data, headers=headers) as response:
                return await response.json()

        async def task() -> Any:
            done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

            async def run() -> None:
                done.set_result(await raw())

            running = asyncio.ensure_future(run())
            result = await done
            await running
            return result

        async def sdk() -> Any:
            event = await core.users.login(PARAMS)
            assert event.error is None, event
            return event

        ways: dict[str, Callable[[], Awaitable[Any]]] = {"raw": raw, "task": task, "sdk": sdk}
        login = ways[way]
        await login()
        for _ in range(count):
            await login()


def instructions(url: str, key: str, way: str, count: int) -> int:
    """Instructions the client executes for ``count`` logins made ``way``."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--client",
        url,
        key,
        way,
        str(count),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--client":
        _, _, url, key, way, count = sys.argv
        asyncio.run(client(url, key, way, int(count)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, nargs=2, default=(40, 240), help="the two login counts")
    args = parser.parse_args()
    low, high = args.n
    if not 0 <= low < high:
        parser.error("-n needs two counts, the first smaller")
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    key = secrets.token_urlsafe(16)
    with _server.server_process(key) as server:
        url = server.url
        with corelogin.init(url, key) as core:
            created = core.users.create(PARAMS).result(30)
            assert created.error is None, created
        per_login = {
            way: (instructions(url, key, way, high) - instructions(url, key, way, low))
            / (high - low)
            for way in WAYS
        }
    print(f"logins            {low} and {high} each way; instructions per login, start-up excluded")
    for way in WAYS:
        ratio = per_login[way] / per_login["raw"]
        print(f"{way:<5}             {per_login[way] / 1000:8.1f} k   {ratio:5.3f} x raw")
    own = per_login["sdk"] - per_login["task"]
    print(f"the SDK's own     {own / 1000:8.1f} k a login, beyond running the call as a task")


if __name__ == "__main__":
    main()
