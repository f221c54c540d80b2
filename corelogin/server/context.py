"""Typed keys for what the application holds (aiohttp `AppKey`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from corelogin.server.config import ServerConfig
from corelogin.server.limits import RateLimit
from corelogin.server.mail import Mailer
from corelogin.server.passwords import PasswordHasher
from corelogin.server.proof.policies import Prover
from corelogin.server.store import Store

if TYPE_CHECKING:  # it reads RATE_LIMITS from here
    from corelogin.server.ratelimits import RateLimits

__all__ = ["BACKGROUND", "CONFIG", "HASHER", "LIMITS", "MAILER", "PROVERS", "RATE_LIMITS", "STORE"]

CONFIG = web.AppKey("config", ServerConfig)
STORE = web.AppKey("store", Store)
HASHER = web.AppKey("hasher", PasswordHasher)
# None when the server has no mail configured (calls that need it answer 702).
MAILER: web.AppKey[Mailer | None] = web.AppKey("mailer")
# Work that outlives its request (reset mails); cancelled when the server stops.
BACKGROUND = web.AppKey("background", set[asyncio.Task[None]])
# Mails asked for per client address (resend, reset); password resets per email address.
LIMITS = web.AppKey("limits", tuple[RateLimit, RateLimit])
# The proof of each configured OAuth provider, by name.
PROVERS: web.AppKey[dict[str, Prover]] = web.AppKey("provers")
# Calls per client address and kind (login, create, resend, reset): 829 beyond them.
RATE_LIMITS: web.AppKey[RateLimits] = web.AppKey("rate_limits")
# The clock sessions are judged by (unix seconds): time.time, or a test's own.
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")
