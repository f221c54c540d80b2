"""Shared fixtures: a real reference server on 127.0.0.1, on a port the OS picks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import pytest

import corelogin
from corelogin.server import RunningServer, ServerConfig, ServerThread, start_server
from tests.helpers import APP_KEY, LOGIN, server_config_for
from tests.netfaults import FaultServer, free_port

try:
    import uvloop
except ImportError:  # the asyncio tests then run on asyncio's loop only
    uvloop = None

if TYPE_CHECKING:  # imported by pytest_plugins below, so that pytest rewrites its asserts
    from tests.mailserver import MailServer

# The real SMTP server (aiosmtpd) of tests/mailserver.py: the mail_server fixture.
# ... and the real JWKS server of tests/jwks.py (the jwks_server fixture).
# ... and a real headless Chromium, driven by Playwright (the browser and page fixtures).
pytest_plugins = ["tests.mailserver", "tests.jwks", "tests.browser"]


@pytest.fixture(scope="session", autouse=True)
def _user_data_elsewhere(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A Core's default session store is a file in the user's data directory: never the real
    one of whoever runs the tests."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("user-data")))
        yield


@pytest.fixture
def server_config(tmp_path: Path) -> ServerConfig:
    return server_config_for(tmp_path / "corelogin.sqlite3")


@pytest.fixture
async def server(server_config: ServerConfig) -> AsyncIterator[RunningServer]:
    """The server in the test's own loop (for asyncio-mode tests)."""
    async with await start_server(server_config) as running:
        yield running


@pytest.fixture
async def core(server: RunningServer) -> AsyncIterator[corelogin.Core]:
    """An asyncio-mode Core talking to `server`."""
    async with corelogin.init(server.url, APP_KEY) as client:
        yield client


@pytest.fixture
def server_thread(server_config: ServerConfig) -> Iterator[ServerThread]:
    """The server on its own thread, for tests of the synchronous modes."""
    with ServerThread(server_config) as running:
        yield running


@pytest.fixture
def mail_config(server_config: ServerConfig, mail_server: MailServer) -> ServerConfig:
    """`server_config` sending its mail through `mail_server` (a real SMTP server)."""
    return attrs.evolve(server_config, smtp_url=mail_server.url, smtp_timeout=5.0)


@pytest.fixture
async def mail_running(mail_config: ServerConfig) -> AsyncIterator[RunningServer]:
    """The server of `mail_config`, in the test's own loop."""
    async with await start_server(mail_config) as running:
        yield running


@pytest.fixture
async def mail_client(mail_running: RunningServer) -> AsyncIterator[corelogin.Core]:
    """An asyncio-mode Core talking to `mail_running`."""
    async with corelogin.init(mail_running.url, APP_KEY) as core:
        yield core


@pytest.fixture
def silent_server() -> Iterator[FaultServer]:
    """A real TCP server that reads requests and never answers."""
    with FaultServer("hang") as fault:
        yield fault


@pytest.fixture
def nowhere() -> str:
    """A URL where nothing listens: for calls decided without the network."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def user_url(server_thread: ServerThread) -> str:
    """A real server on its own thread, with the user Donna / PASSWORD."""
    with corelogin.init(server_thread.url, APP_KEY) as core:
        event = core.users.create(LOGIN).result(10)
    assert event.error is None, event
    return server_thread.url


@pytest.fixture
def tiny_switch_interval() -> Iterator[None]:
    """Switch threads as often as CPython allows, to widen races."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


# -- PostgreSQL: the machine's server, one schema per test --------------------------------

PG_DSN_VARIABLE = "CORELOGIN_TEST_PG_DSN"


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """The PostgreSQL the tests may use (CI sets it); without it the test is skipped, with
    the reason shown by ``-ra``."""
    dsn = os.environ.get(PG_DSN_VARIABLE)
    if not dsn:
        pytest.skip(f"{PG_DSN_VARIABLE} is not set: no PostgreSQL to test against")
    return dsn


@pytest.fixture
def pg_url(pg_dsn: str) -> Iterator[str]:
    """A database URL of a schema of this test's own (created empty, dropped after), so that
    tests can run side by side: the ``search_path`` query parameter selects it."""
    with pg_schema(pg_dsn) as url:
        yield url


@contextlib.contextmanager
def pg_schema(dsn: str) -> Iterator[str]:
    """A new, empty schema of the database of ``dsn`` while the block runs: its URL."""
    import asyncpg

    schema = f"t_{secrets.token_hex(6)}"

    async def run(statement: str) -> None:
        admin = await asyncpg.connect(dsn)
        try:
            await admin.execute(statement)
        finally:
            await admin.close()

    asyncio.run(run(f"CREATE SCHEMA {schema}"))
    try:
        yield with_search_path(dsn, schema)
    finally:
        asyncio.run(run(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))


def with_search_path(dsn: str, schema: str) -> str:
    separator = "&" if "?" in dsn else "?"
    return f"{dsn}{separator}search_path={schema}"


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Every asyncio test runs on asyncio's own loop, and again on uvloop's when installed;
    but the store's own tests (tests/store/), which use no SDK, run once."""
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop
    }
    if uvloop is not None and not item.nodeid.startswith("tests/store/"):
        factories["uvloop"] = uvloop.new_event_loop
    return factories
