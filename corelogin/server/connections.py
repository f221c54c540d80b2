"""Connections: how many, from whom, and how long a request may take to arrive.

aiohttp leaves a connection open for as long as its client likes: a client that sends nothing,
dribbles its headers (slowloris) or its body, or holds thousands of sockets, wears the server
down for nothing. `GuardedHandler` is aiohttp's request handler with three bounds:

- a request must arrive whole (headers and body) within ``request_timeout`` of its first byte,
  or of the connection's opening; the handler then says it has arrived (`arrived`);
- an idle keep-alive connection is closed after ``keepalive_timeout`` (aiohttp's own timer);
- one address holds at most ``max_connections_per_address`` connections, and the server at
  most ``max_connections``; a connection beyond them is closed at once, before any parsing,
  and the refusals are logged once a minute, not once per socket.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any, cast

import attrs
from aiohttp import web

from corelogin.wire import ApiError, Status

__all__ = ["SERVER_NAME", "ConnectionGuard", "GuardedHandler", "arrived"]

log = logging.getLogger("corelogin.server")

REFUSAL_LOG_EVERY = 60.0  # seconds between two logs of refused connections
SERVER_NAME = "corelogin"  # the Server header: no Python or aiohttp version to look up


@attrs.define
class ConnectionGuard:
    """The connections of one server, by client address, and the limits on them."""

    max_connections: int
    max_per_address: int
    request_timeout: float
    total: int = 0
    by_address: Counter[str] = attrs.field(factory=Counter)
    _refused: int = 0
    _logged_at: float = -REFUSAL_LOG_EVERY

    def admit(self, address: str) -> bool:
        if self.total >= self.max_connections or self.by_address[address] >= self.max_per_address:
            self._refuse(address)
            return False
        self.total += 1
        self.by_address[address] += 1
        return True

    def release(self, address: str) -> None:
        self.total -= 1
        self.by_address[address] -= 1
        if not self.by_address[address]:
            del self.by_address[address]

    def _refuse(self, address: str) -> None:
        self._refused += 1
        now = time.monotonic()
        if now - self._logged_at >= REFUSAL_LOG_EVERY:
            log.warning(
                "refused %d connection(s) over the limits (%d in all, %d per address; the "
                "latest from %s)",
                self._refused,
                self.max_connections,
                self.max_per_address,
                address,
            )
            self._logged_at, self._refused = now, 0


class GuardedHandler(web.RequestHandler):
    """aiohttp's request handler, within the `ConnectionGuard`'s limits."""

    def __init__(self, manager: web.Server, *, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._address: str | None = None  # set once admitted
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        if not self._guard.admit(address):
            # aiohttp never learns of it: nothing is parsed or allocated.
            cast(asyncio.Transport, transport).abort()
            return
        self._address = address
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._address is None:  # refused
            return
        self._disarm()
        self._guard.release(self._address)
        self._address = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and data:  # the first byte of the next request
            self._arm()
        super().data_received(data)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A request aiohttp could not parse (or a failure outside the app): logged as aiohttp
        does (without the request's bytes: see logsafety), answered with the JSON envelope,
        which echoes nothing of the request, unlike aiohttp's own plain-text answer."""
        super().handle_error(request, status, exc, message)
        if status >= 500:
            error = ApiError(Status.SERVER_ERROR, "server error", http_status=status)
        else:
            error = ApiError(Status.WRONG_TYPE, "the request is not valid HTTP", http_status=status)
        response = web.json_response(
            {"error": error.message, "status": int(error.status)}, status=error.http_status
        )
        response.headers["Server"] = SERVER_NAME
        response.force_close()
        return response

    def arrived(self) -> None:
        """The current request has arrived whole: its handler may take its time."""
        self._disarm()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self._loop.call_later(self._guard.request_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        log.debug(
            "closed a connection from %s: no whole request within %g s",
            self._address,
            self._guard.request_timeout,
        )
        self.force_close()


def arrived(request: web.Request) -> None:
    """Tell the connection that ``request`` has arrived whole (headers, and body if any)."""
    protocol = request.protocol
    if isinstance(protocol, GuardedHandler):
        protocol.arrived()
