"""Rate limits per client address and per call kind (829 with Retry-After; DESIGN.md §4).

``rate_limit_per_minute`` calls of each kind from one address in a minute (a fixed window
that starts with the address's first call; 0 turns the limits off). Players behind one NAT
share an address, hence the generous default. Counted by the store, like every
`limits.RateLimit`: server instances on one PostgreSQL database share the counts.
"""

from __future__ import annotations

from collections import Counter
from typing import Final

from aiohttp import web

from corelogin.server.context import RATE_LIMITS, STORE
from corelogin.server.limits import HitCounter, RateLimit
from corelogin.wire import ApiError

__all__ = ["KINDS", "RateLimits", "check_rate"]

# The calls that are limited, and what the 829's message calls them.
KINDS: Final = {
    "login": "logins from this address",
    "create": "sign-ups from this address",
    "resend_confirmation": "confirmation mails asked for from this address",
    "send_password_reset": "password resets asked for from this address",
}

WINDOW_SECONDS: Final = 60


class RateLimits:
    """One `RateLimit` per kind of `KINDS`, keyed by client address."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._limits = {
            kind: RateLimit(per_minute, WINDOW_SECONDS, what, name=kind)
            for kind, what in KINDS.items()
        }
        # Calls refused, by kind (for the operator, and to show that nothing retried them).
        self.refused: Counter[str] = Counter()

    async def hit(
        self, counter: HitCounter, kind: str, address: str, now: float | None = None
    ) -> None:
        """Count one call of ``kind`` from ``address`` in ``counter``; raise 829 (with
        Retry-After) past the limit. ``kind`` must be one of `KINDS`."""
        limit = self._limits[kind]
        if self.per_minute <= 0:
            return
        try:
            await limit.hit(counter, address, now)
        except ApiError:
            self.refused[kind] += 1
            raise


async def check_rate(request: web.Request, kind: str) -> None:
    """Count one call of ``kind`` (one of `KINDS`) from the request's client address: 829 with
    Retry-After past ``rate_limit_per_minute``."""
    await request.app[RATE_LIMITS].hit(request.app[STORE], kind, request.remote or "")
