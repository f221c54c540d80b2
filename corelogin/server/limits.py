"""Rate limits: at most so many hits of a key (a client address, an email) in a window.

A fixed window per key, which starts with the key's first hit: cheap, and good enough to stop
one client from flooding logins or a mailbox. The counting is the store's (`HitCounter`), so
that several server instances on one PostgreSQL database share every count; the SQLite store,
served by one process, counts in memory (`LocalHits`).
"""

from __future__ import annotations

import math
import time
from typing import Protocol

from corelogin.wire import ApiError, Status

__all__ = ["HitCounter", "LocalHits", "RateLimit"]


class HitCounter(Protocol):
    async def count_hit(self, key: str, window: float, now: float) -> tuple[float, int]:
        """Count one hit of ``key``: (when its window started, hits in it, this one
        included). A window ends ``window`` seconds after it started; the next hit starts
        a new one."""


class LocalHits:
    """`HitCounter` in this process's memory (forgetting ended windows past 10,000 keys)."""

    def __init__(self) -> None:
        self._hits: dict[str, tuple[float, float, int]] = {}  # key -> (start, end, hits)

    async def count_hit(self, key: str, window: float, now: float) -> tuple[float, int]:
        if len(self._hits) > 10_000:
            self._hits = {k: v for k, v in self._hits.items() if v[1] > now}
        start, end, hits = self._hits.get(key, (now, now + window, 0))
        if end <= now:
            start, end, hits = now, now + window, 0
        self._hits[key] = (start, end, hits + 1)
        return start, hits + 1


class RateLimit:
    """At most ``count`` hits per key in each ``window`` seconds; ``name`` keeps its keys apart
    from other limits' in a shared counter, ``what`` names them in the 829's message."""

    def __init__(self, count: int, window: float, what: str, *, name: str) -> None:
        self.count = count
        self.window = window
        self.what = what
        self.name = name

    async def hit(self, counter: HitCounter, key: str, now: float | None = None) -> None:
        """Count one hit of ``key``; raise 829 (with Retry-After) past the limit."""
        now = time.time() if now is None else now
        start, hits = await counter.count_hit(f"{self.name}:{key}", self.window, now)
        if hits > self.count:
            wait = max(1, math.ceil(start + self.window - now))
            raise ApiError(
                Status.TOO_MANY_REQUESTS,
                f"too many {self.what}; try again in {wait} s",
                retry_after=wait,
            )
