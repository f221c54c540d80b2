"""The routes of the calls of `corelogin.wire.CALLS`: one wrapper reads and checks every call
the same way (app key, JSON body, parameters, caller), then hands it to its handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from corelogin.server.access import Caller, identify
from corelogin.server.envelope import read_call
from corelogin.wire import CALLS, check_params

__all__ = ["CallHandler", "routes"]

CallHandler = Callable[[web.Request, Caller, dict[str, Any]], Awaitable[web.Response]]


def routes(handlers: Mapping[str, CallHandler]) -> list[web.RouteDef]:
    """A POST route for every call; ``handlers`` must cover `CALLS` exactly."""
    if set(handlers) != set(CALLS):
        raise ValueError(f"handlers and calls differ: {sorted(set(handlers) ^ set(CALLS))}")
    return [web.post(call.path, _checked(name, handlers[name])) for name, call in CALLS.items()]


def _checked(name: str, handler: CallHandler) -> Callable[[web.Request], Awaitable[web.Response]]:
    call = CALLS[name]

    async def handle(request: web.Request) -> web.Response:
        scope, body = await read_call(request)
        params = check_params(name, body)
        return await handler(request, await identify(request, call, scope), params)

    handle.__name__ = handle.__qualname__ = name
    return handle
