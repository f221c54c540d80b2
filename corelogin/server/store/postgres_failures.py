"""The PostgreSQL store's failed logins, and the lockout they lead to (606).

The tables are the SQLite store's (see `corelogin.server.store.sqlite_failures`): every failure
stays on record, and ``lockouts`` says which count. Each decision about one identifier runs
under an advisory lock of that identifier, so failures arriving at several instances at once
are counted one after the other, and the ids they get are in that order.
"""

from __future__ import annotations

import attrs

from corelogin.server.store.base import FailedLogin, LockoutRule
from corelogin.server.store.postgres_base import Conn, PostgresBase, lock_key
from corelogin.server.store.rows import CLEAR_NEEDED

__all__ = ["PostgresFailures"]

_COUNTED = (
    "SELECT count(*) FROM failed_logins WHERE scope = $1 AND identifier = $2 AND at >= $3 "
    "AND id > $4 AND reason != 'locked'"
)
_LOCK = "SELECT pg_advisory_xact_lock($1)"


class PostgresFailures(PostgresBase):
    """Failed logins by username or email, and the lockout of each identifier."""

    async def record_failure(self, failure: FailedLogin, rule: LockoutRule | None = None) -> bool:
        async with self._transaction() as conn:
            if rule is None or rule.threshold <= 0:
                await self._insert_failure(conn, failure)
                return False
            scope, identifier, now = failure.scope, failure.identifier, failure.at
            await conn.execute(_LOCK, lock_key("lockout", scope, identifier))
            counted_after, locked_until = await self._lockout(conn, scope, identifier)
            if locked_until is not None and locked_until > now:
                await self._insert_failure(conn, attrs.evolve(failure, reason="locked"))
                return True
            counted = int(
                await conn.fetchval(_COUNTED, scope, identifier, now - rule.window, counted_after)
            )
            # As many as the threshold without a lock: the threshold was lowered since.
            locked = counted >= rule.threshold
            failure_id = await self._insert_failure(
                conn, attrs.evolve(failure, reason="locked") if locked else failure
            )
            if locked or counted + 1 >= rule.threshold:
                # Locked from now; once it ends, the count starts again from zero.
                await self._set_lockout(conn, scope, identifier, failure_id, now + rule.seconds)
            return locked

    async def failures_since(self, scope: str, identifier: str, since: float) -> int:
        async with self._connection() as conn:
            counted_after, _ = await self._lockout(conn, scope, identifier)
            return int(await conn.fetchval(_COUNTED, scope, identifier, since, counted_after))

    async def clear_failures(
        self, scope: str, identifier: str, *, unless_locked_at: float | None = None
    ) -> bool:
        async with self._connection() as conn:
            # Most logins have nothing to clear: decide that in one query, without a lock.
            row = await conn.fetchrow(CLEAR_NEEDED, scope, identifier)
            if row is not None and not row[0]:
                return True
            async with conn.transaction():
                await conn.execute(_LOCK, lock_key("lockout", scope, identifier))
                counted_after, locked_until = await self._lockout(conn, scope, identifier)
                if (
                    unless_locked_at is not None
                    and locked_until is not None
                    and locked_until > unless_locked_at
                ):
                    return False
                last = await conn.fetchval(
                    "SELECT max(id) FROM failed_logins WHERE scope = $1 AND identifier = $2",
                    scope,
                    identifier,
                )
                last = max(counted_after, last or 0)
                if last > counted_after or locked_until is not None:
                    await self._set_lockout(conn, scope, identifier, last, None)
                return True

    async def locked_until(self, scope: str, identifier: str, now: float) -> float | None:
        async with self._connection() as conn:
            _, until = await self._lockout(conn, scope, identifier)
        return until if until is not None and until > now else None

    async def failed_logins(
        self, scope: str, identifier: str | None = None, *, limit: int = 100
    ) -> list[FailedLogin]:
        rows = await self._fetch(
            "SELECT scope, identifier, at, remote, user_agent, reason FROM failed_logins "
            "WHERE scope = $1 AND ($2::text IS NULL OR identifier = $2) "
            "ORDER BY at DESC, id DESC LIMIT $3",
            scope,
            identifier,
            limit,
        )
        return [FailedLogin(*row) for row in rows]

    async def _lockout(self, conn: Conn, scope: str, identifier: str) -> tuple[int, float | None]:
        """(counted_after, locked_until) of the identifier: (0, None) when it has none."""
        row = await conn.fetchrow(
            "SELECT counted_after, locked_until FROM lockouts WHERE scope = $1 AND identifier = $2",
            scope,
            identifier,
        )
        return (0, None) if row is None else (int(row[0]), row[1])

    async def _set_lockout(
        self,
        conn: Conn,
        scope: str,
        identifier: str,
        counted_after: int,
        locked_until: float | None,
    ) -> None:
        await conn.execute(
            "INSERT INTO lockouts (scope, identifier, counted_after, locked_until) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (scope, identifier) DO UPDATE SET "
            "counted_after = excluded.counted_after, locked_until = excluded.locked_until",
            scope,
            identifier,
            counted_after,
            locked_until,
        )

    async def _insert_failure(self, conn: Conn, failure: FailedLogin) -> int:
        failure_id = await conn.fetchval(
            "INSERT INTO failed_logins (scope, identifier, at, remote, user_agent, reason) "
            "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            failure.scope,
            failure.identifier,
            failure.at,
            failure.remote,
            failure.user_agent,
            failure.reason,
        )
        return int(failure_id)
