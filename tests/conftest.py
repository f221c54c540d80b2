"""Shared fixtures: a real reference server on 127.0.0.1, on a port the OS picks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import corelogin
from corelogin.server import RunningServer, ServerConfig, ServerThread, start_server
from tests.helpers import APP_KEY


@pytest.fixture
def server_config(tmp_path: Path) -> ServerConfig:
    return ServerConfig(app_key=APP_KEY, db=f"sqlite:///{tmp_path / 'corelogin.sqlite3'}", port=0)


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
