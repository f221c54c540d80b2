"""Real ``corelogin serve`` processes for the tests of several instances on one database, and a
plain HTTP client for them (the tests pass session tokens from one instance to another, which
the SDK rightly keeps to itself)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any

import aiohttp

from corelogin.wire import ADMIN_KEY_HEADER, APP_KEY_HEADER, PATHS
from tests.helpers import APP_KEY, wait_for_health
from tests.netfaults import free_port

ADMIN_KEY = "test-admin-key"
SERVE = [sys.executable, "-m", "corelogin.cli", "serve"]


@contextmanager
def serve(db: str, **settings: object) -> Iterator[str]:
    """A ``corelogin serve`` process on ``db`` and a free port: its URL. Settings are
    ServerConfig fields, given as CORELOGIN_* variables (so no secret is on a command line)."""
    port = free_port()
    env = {
        **os.environ,
        "CORELOGIN_KEY": APP_KEY,
        "CORELOGIN_ADMIN_KEY": ADMIN_KEY,
        "CORELOGIN_DB": db,
        "CORELOGIN_PORT": str(port),
        # These tests are about agreement between instances, not about the cost of hashing.
        "CORELOGIN_INSECURE_FAST_HASH": "true",
        "CORELOGIN_RATE_LIMIT_PER_MINUTE": "0",
        **{f"CORELOGIN_{name.upper()}": str(value) for name, value in settings.items()},
    }
    proc = subprocess.Popen(
        [*SERVE, "--log-level", "WARNING"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, proc)
        yield url
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
        assert "Traceback" not in err, err


@contextmanager
def instances(db: str, count: int = 2, **settings: object) -> Iterator[list[str]]:
    """``count`` server processes on one database."""
    with ExitStack() as stack:
        yield [stack.enter_context(serve(db, **settings)) for _ in range(count)]


async def call(
    session: aiohttp.ClientSession,
    url: str,
    name: str,
    body: Mapping[str, Any] | None = None,
    *,
    token: str | None = None,
    admin: bool = False,
) -> tuple[int, dict[str, Any]]:
    """POST one call of the wire contract; (HTTP status, the JSON envelope)."""
    headers = {APP_KEY_HEADER: APP_KEY}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if admin:
        headers[ADMIN_KEY_HEADER] = ADMIN_KEY
    async with session.post(
        f"{url}/v1/users/{name}", json={"scope": "default", **(body or {})}, headers=headers
    ) as response:
        return response.status, dict(await response.json())


async def health(session: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any]]:
    async with session.get(url + PATHS["health"]) as response:
        return response.status, dict(await response.json())


async def gather_split(
    session: aiohttp.ClientSession,
    urls: list[str],
    count: int,
    name: str,
    body: Mapping[str, Any],
    **options: Any,
) -> list[dict[str, Any]]:
    """``count`` concurrent calls, dealt out to the instances in turn: their envelopes."""
    answers = await asyncio.gather(
        *(call(session, urls[i % len(urls)], name, body, **options) for i in range(count))
    )
    return [envelope for _, envelope in answers]
