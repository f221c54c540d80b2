"""Per-key rate limits kept in this process (send_password_reset per address and per email).

A fixed window per key: cheap, and good enough to stop one client from flooding a mailbox.
Limits that every server instance must share live in the store instead.
"""

from __future__ import annotations

import math
import time

from corelogin.wire import ApiError, Status

__all__ = ["RateLimit"]


class RateLimit:
    """At most ``count`` hits per key in each ``window`` seconds."""

    def __init__(self, count: int, window: float, what: str) -> None:
        self.count = count
        self.window = window
        self.what = what
        self._hits: dict[str, tuple[float, int]] = {}  # key -> (window start, hits)

    def hit(self, key: str, now: float | None = None) -> None:
        """Count one hit of ``key``; raise 829 (with Retry-After) past the limit."""
        now = time.monotonic() if now is None else now
        if len(self._hits) > 10_000:
            self._forget(now)
        start, hits = self._hits.get(key, (now, 0))
        if now - start >= self.window:
            start, hits = now, 0
        if hits >= self.count:
            wait = max(1, math.ceil(start + self.window - now))
            raise ApiError(
                Status.TOO_MANY_REQUESTS,
                f"too many {self.what}; try again in {wait} s",
                retry_after=wait,
            )
        self._hits[key] = (start, hits + 1)

    def _forget(self, now: float) -> None:
        self._hits = {k: v for k, v in self._hits.items() if now - v[0] < self.window}
