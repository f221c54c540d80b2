"""Running the reference server: in the current loop, in a background thread, or forever."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from typing import Any

import attrs
from aiohttp import web

from corelogin.server.app import create_app
from corelogin.server.config import ServerConfig
from corelogin.server.connections import ConnectionGuard, GuardedHandler
from corelogin.server.context import STORE
from corelogin.server.store import Store

__all__ = ["RunningServer", "ServerThread", "serve_forever", "start_server"]

log = logging.getLogger("corelogin.server")


@attrs.define
class RunningServer:
    """A server listening in the current loop. ``port=0`` in the config picks a free port."""

    url: str
    app: web.Application
    _runner: web.AppRunner
    _listener: asyncio.Server

    @property
    def store(self) -> Store:
        return self.app[STORE]

    async def stop(self) -> None:
        self._listener.close()
        await self._runner.cleanup()

    async def __aenter__(self) -> RunningServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def start_server(
    config: ServerConfig, *, reuse_port: bool | None = None, **app_options: Any
) -> RunningServer:
    """Start serving and return once the server answers (``/health`` is ready then).

    ``reuse_port`` (default: ``config.workers > 1``) binds with SO_REUSEPORT, so that the
    processes of `corelogin.server.workers` share the port and the kernel spreads the
    connections among them."""
    app = create_app(config, **app_options)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    loop = asyncio.get_running_loop()
    guard = ConnectionGuard(
        max_connections=config.max_connections,
        max_per_address=config.max_connections_per_address,
        request_timeout=config.request_timeout,
    )
    server = runner.server
    assert server is not None

    def connection() -> GuardedHandler:
        return GuardedHandler(
            server,
            guard=guard,
            loop=loop,
            keepalive_timeout=config.keepalive_timeout,
            access_log=None,
        )

    try:
        listener = await loop.create_server(
            connection,
            config.host,
            config.port,
            reuse_port=config.workers > 1 if reuse_port is None else reuse_port,
        )
    except BaseException:
        await runner.cleanup()
        raise
    host, port = listener.sockets[0].getsockname()[:2]
    url = f"http://{host}:{port}"
    log.info("corelogin server listening on %s (store %s)", url, config.db.split(":", 1)[0])
    return RunningServer(url, app, runner, listener)


class ServerThread:
    """The server on a daemon thread with its own loop, for synchronous programs and samples.

    ``with ServerThread(config) as server: ... server.url``
    """

    def __init__(self, config: ServerConfig, **app_options: Any) -> None:
        self._config = config
        self._options = app_options
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, daemon=True, name="corelogin-server"
        )
        self._server: RunningServer | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the server is not running")
        return self._server.url

    def start(self, timeout: float = 30) -> ServerThread:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            start_server(self._config, **self._options), self._loop
        )
        self._server = future.result(timeout)
        return self

    def stop(self, timeout: float = 30) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            asyncio.run_coroutine_threadsafe(server.stop(), self._loop).result(timeout)
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
        if not self._loop.is_closed() and not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def serve_forever(config: ServerConfig) -> None:
    """Serve until SIGINT or SIGTERM (the ``corelogin serve`` command)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with await start_server(config):
        await stop.wait()
    log.info("corelogin server stopped")
