"""The PostgreSQL store's rate-limit counts, shared by every server instance on the database."""

from __future__ import annotations

import itertools
from typing import Final

from corelogin.server.store.postgres_base import PostgresBase

__all__ = ["PostgresLimits"]

# One statement counts a hit: a window that has ended starts again with this hit.
_COUNT_HIT: Final = """
    INSERT INTO rate_limits (key, started, ends, hits)
    VALUES ($1, $2::float8, $2::float8 + $3::float8, 1)
    ON CONFLICT (key) DO UPDATE SET
        started = CASE WHEN rate_limits.ends <= $2 THEN $2 ELSE rate_limits.started END,
        ends = CASE WHEN rate_limits.ends <= $2 THEN $2 + $3 ELSE rate_limits.ends END,
        hits = CASE WHEN rate_limits.ends <= $2 THEN 1 ELSE rate_limits.hits + 1 END
    RETURNING started, hits
"""

# Every this many hits, a process deletes the windows that have ended.
PRUNE_EVERY: Final = 1000


class PostgresLimits(PostgresBase):
    """Rate-limit windows in the ``rate_limits`` table."""

    _hits_counted = itertools.count(1)

    async def count_hit(self, key: str, window: float, now: float) -> tuple[float, int]:
        async with self._connection() as conn:
            if next(self._hits_counted) % PRUNE_EVERY == 0:
                await conn.execute("DELETE FROM rate_limits WHERE ends <= $1", now)
            row = await conn.fetchrow(_COUNT_HIT, key, now, window)
        assert row is not None  # INSERT ... RETURNING returns its row
        return float(row[0]), int(row[1])
