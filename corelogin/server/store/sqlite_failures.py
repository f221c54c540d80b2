"""The SQLite store's failed logins, and the lockout they lead to (606).

Every failed login stays on record (for the administrator); what counts towards a lockout is
kept apart, in ``lockouts``: the failures after ``counted_after`` (an id of ``failed_logins``,
which AUTOINCREMENT never reuses), until a success, an administrator or a lock moves it on.
Each decision reads and writes in one write transaction, so concurrent failures are counted
one after the other.
"""

from __future__ import annotations

import aiosqlite
import attrs

from corelogin.server.store.base import FailedLogin, LockoutRule
from corelogin.server.store.rows import CLEAR_NEEDED
from corelogin.server.store.sqlite_base import SQLiteBase

__all__ = ["SQLiteFailures"]

_COUNTED = (
    "SELECT count(*) FROM failed_logins WHERE scope = ? AND identifier = ? AND at >= ? "
    "AND id > ? AND reason != 'locked'"
)


class SQLiteFailures(SQLiteBase):
    """Failed logins by username or email, and the lockout of each identifier."""

    async def record_failure(self, failure: FailedLogin, rule: LockoutRule | None = None) -> bool:
        async with self._transaction() as conn:
            if rule is None or rule.threshold <= 0:
                await self._insert_failure(conn, failure)
                return False
            scope, identifier, now = failure.scope, failure.identifier, failure.at
            counted_after, locked_until = await self._lockout(scope, identifier)
            if locked_until is not None and locked_until > now:
                await self._insert_failure(conn, attrs.evolve(failure, reason="locked"))
                return True
            row = await self._fetchone(
                _COUNTED, (scope, identifier, now - rule.window, counted_after)
            )
            counted = int(row[0])
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
        counted_after, _ = await self._lockout(scope, identifier)
        row = await self._fetchone(_COUNTED, (scope, identifier, since, counted_after))
        return int(row[0])

    async def clear_failures(
        self, scope: str, identifier: str, *, unless_locked_at: float | None = None
    ) -> bool:
        # Most logins have nothing to clear: decide that with one read, without the write lock.
        row = await self._fetchone(CLEAR_NEEDED.replace("$", "?"), (scope, identifier))
        if not row[0]:
            return True
        async with self._transaction() as conn:
            counted_after, locked_until = await self._lockout(scope, identifier)
            if (
                unless_locked_at is not None
                and locked_until is not None
                and locked_until > unless_locked_at
            ):
                return False
            row = await self._fetchone(
                "SELECT max(id) FROM failed_logins WHERE scope = ? AND identifier = ?",
                (scope, identifier),
            )
            last = max(counted_after, row[0] or 0)
            # Most logins have nothing to clear: they write nothing.
            if last > counted_after or locked_until is not None:
                await self._set_lockout(conn, scope, identifier, last, None)
            return True

    async def locked_until(self, scope: str, identifier: str, now: float) -> float | None:
        _, until = await self._lockout(scope, identifier)
        return until if until is not None and until > now else None

    async def failed_logins(
        self, scope: str, identifier: str | None = None, *, limit: int = 100
    ) -> list[FailedLogin]:
        columns = "scope, identifier, at, remote, user_agent, reason"
        if identifier is None:
            sql = f"SELECT {columns} FROM failed_logins WHERE scope = ? "  # noqa: S608
            args: tuple[object, ...] = (scope,)
        else:
            sql = f"SELECT {columns} FROM failed_logins WHERE scope = ? AND identifier = ? "  # noqa: S608
            args = (scope, identifier)
        rows = await self._fetchall(sql + "ORDER BY at DESC, id DESC LIMIT ?", (*args, limit))
        return [FailedLogin(*row) for row in rows]

    async def _lockout(self, scope: str, identifier: str) -> tuple[int, float | None]:
        """(counted_after, locked_until) of the identifier: (0, None) when it has none."""
        row = await self._fetchone(
            "SELECT counted_after, locked_until FROM lockouts WHERE scope = ? AND identifier = ?",
            (scope, identifier),
        )
        return (0, None) if row is None else (int(row[0]), row[1])

    async def _set_lockout(
        self,
        conn: aiosqlite.Connection,
        scope: str,
        identifier: str,
        counted_after: int,
        locked_until: float | None,
    ) -> None:
        await conn.execute(
            "INSERT INTO lockouts (scope, identifier, counted_after, locked_until) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (scope, identifier) DO UPDATE SET "
            "counted_after = excluded.counted_after, locked_until = excluded.locked_until",
            (scope, identifier, counted_after, locked_until),
        )

    async def _insert_failure(self, conn: aiosqlite.Connection, failure: FailedLogin) -> int:
        cur = await conn.execute(
            "INSERT INTO failed_logins (scope, identifier, at, remote, user_agent, reason) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                failure.scope,
                failure.identifier,
                failure.at,
                failure.remote,
                failure.user_agent,
                failure.reason,
            ),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid
