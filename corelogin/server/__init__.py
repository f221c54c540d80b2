"""The corelogin reference server (install with the ``server`` extra).

``corelogin serve`` runs it from the command line; `start_server` and `ServerThread` run it
in-process for quick starts and tests.
"""

from __future__ import annotations

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
