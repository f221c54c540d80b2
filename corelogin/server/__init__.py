"""The corelogin reference server (install with the ``server`` extra).

``corelogin serve`` runs it from the command line; `start_server` and `ServerThread` run it
in-process for quick starts and tests.

The names below are imported on first use, so that the parts that need only the wire
contract (``corelogin openapi``) work without the server extra installed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from corelogin.server.app import create_app
    from corelogin.server.config import ServerConfig
    from corelogin.server.runner import RunningServer, ServerThread, serve_forever, start_server

__all__ = [
    "RunningServer",
    "ServerConfig",
    "ServerThread",
    "create_app",
    "serve_forever",
    "start_server",
]

_HOMES = {
    "RunningServer": "runner",
    "ServerConfig": "config",
    "ServerThread": "runner",
    "create_app": "app",
    "serve_forever": "runner",
    "start_server": "runner",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
