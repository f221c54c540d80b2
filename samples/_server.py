"""Where the samples get their server: yours, or an embedded one on a throwaway SQLite file.

Every sample takes ``--server URL --key KEY`` to talk to a running ``corelogin serve``. Without
them it starts the reference server in-process on a port the OS picks, with a random app key and
a database in a temporary directory that is removed on exit.
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from corelogin.server import ServerConfig, ServerThread, start_server

# The samples' password (the server wants at least 8 characters).
PASSWORD = "correct horse battery staple"


def parse_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Add ``--server`` / ``--key`` to a sample's own options and parse the command line."""
    parser.add_argument("--server", help="URL of a running corelogin server (default: embedded)")
    parser.add_argument("--key", help="the app key of that server (required with --server)")
    args = parser.parse_args()
    if args.server and not args.key:
        parser.error("--key is required with --server")
    return args


def new_username() -> str:
    """A fresh name, so that a sample can run many times against the same server."""
    return f"donna-{secrets.token_hex(4)}"


def _config(directory: str) -> ServerConfig:
    db = Path(directory) / "corelogin.sqlite3"
    return ServerConfig(app_key=secrets.token_urlsafe(16), db=f"sqlite:///{db}", port=0)


@contextmanager
def server(args: argparse.Namespace) -> Iterator[tuple[str, str]]:
    """``(url, key)`` for synchronous code; an embedded server runs on its own thread."""
    if args.server:
        yield args.server, args.key
        return
    with tempfile.TemporaryDirectory() as directory:
        config = _config(directory)
        with ServerThread(config) as running:
            yield running.url, config.app_key


@asynccontextmanager
async def aserver(args: argparse.Namespace) -> AsyncIterator[tuple[str, str]]:
    """``(url, key)`` for asyncio code; an embedded server runs in the current loop."""
    if args.server:
        yield args.server, args.key
        return
    with tempfile.TemporaryDirectory() as directory:
        config = _config(directory)
        async with await start_server(config) as running:
            yield running.url, config.app_key
