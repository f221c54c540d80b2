"""Typed keys for what the application holds (aiohttp `AppKey`)."""

from __future__ import annotations

from aiohttp import web

from corelogin.server.config import ServerConfig
from corelogin.server.passwords import PasswordHasher
from corelogin.server.store import Store

__all__ = ["CONFIG", "HASHER", "STORE"]

CONFIG = web.AppKey("config", ServerConfig)
STORE = web.AppKey("store", Store)
HASHER = web.AppKey("hasher", PasswordHasher)
