"""The SQLite store's part of the admin page (issue 12): operators and their sessions, the
audit log, and the page's queries (users by page, the day's figures).

An operator's sessions end with it by the foreign key (``ON DELETE CASCADE``; the store turns
foreign keys on), and with a new password in the same transaction. The pages of users are
`corelogin.server.store.admin_rows`' statements, which both backends share.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from corelogin.server.store.admin_base import (
    AdminSession,
    AuditEntry,
    DayCount,
    DuplicateOperatorError,
    Operator,
    UserPage,
    UserQuery,
)
from corelogin.server.store.admin_rows import audit_from_row, audit_sql, user_page, user_page_sql
from corelogin.server.store.base import SessionRecord
from corelogin.server.store.rows import SESSION_COLUMNS
from corelogin.server.store.sqlite_base import SQLiteBase

__all__ = ["SQLiteAdmin"]

_ADMIN_SESSION: Final = (
    "SELECT s.token_hash, s.operator, s.created, s.expires, s.last_seen FROM admin_sessions s "
    "JOIN operators o ON o.name = s.operator WHERE s.token_hash = ?"
)
# Days as UTC dates: SQLite's date() of a Unix time is UTC.
_JOINS_PER_DAY: Final = (
    "SELECT date(created, 'unixepoch') AS day, count(*) FROM users "
    "WHERE scope = ? AND created >= ? GROUP BY day ORDER BY day"
)
_LOGINS_PER_DAY: Final = (
    "SELECT date(e.at, 'unixepoch') AS day, count(*) FROM login_events e "
    "JOIN users u ON u.user_id = e.user_id WHERE u.scope = ? AND e.at >= ? "
    "GROUP BY day ORDER BY day"
)


class SQLiteAdmin(SQLiteBase):
    """Operators, their sessions, the audit log and the admin page's queries."""

    # -- operators ---------------------------------------------------------------------

    async def add_operator(self, operator: Operator) -> None:
        try:
            async with self._write:
                await self.conn.execute(
                    "INSERT INTO operators (name, password_hash, created) VALUES (?, ?, ?)",
                    (operator.name, operator.password_hash, operator.created),
                )
        except sqlite3.IntegrityError:
            raise DuplicateOperatorError(operator.name) from None

    async def get_operator(self, name: str) -> Operator | None:
        row = await self._fetchone(
            "SELECT name, password_hash, created FROM operators WHERE name = ?", (name,)
        )
        return None if row is None else Operator(*row)

    async def set_operator_password(self, name: str, password_hash: str) -> bool:
        async with self._transaction() as conn:
            cur = await conn.execute(
                "UPDATE operators SET password_hash = ? WHERE name = ?", (password_hash, name)
            )
            if cur.rowcount == 0:
                return False
            await conn.execute("DELETE FROM admin_sessions WHERE operator = ?", (name,))
            return True

    async def remove_operator(self, name: str) -> bool:
        async with self._write:  # its sessions go by the foreign key's cascade
            cur = await self.conn.execute("DELETE FROM operators WHERE name = ?", (name,))
            return cur.rowcount > 0

    # -- their sessions ----------------------------------------------------------------

    async def open_admin_session(self, session: AdminSession) -> None:
        try:
            async with self._write:
                await self.conn.execute(
                    "INSERT INTO admin_sessions (token_hash, operator, created, expires, "
                    "last_seen) VALUES (?, ?, ?, ?, ?)",
                    (
                        session.token_hash,
                        session.operator,
                        session.created,
                        session.expires,
                        session.last_seen,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            if "FOREIGN KEY" in str(exc):
                raise LookupError("the operator does not exist") from None
            raise

    async def admin_session(self, token_hash: str) -> AdminSession | None:
        row = await self._fetchone(_ADMIN_SESSION, (token_hash,))
        return None if row is None else AdminSession(*row)

    async def touch_admin_session(self, token_hash: str, now: float) -> None:
        async with self._write:
            await self.conn.execute(
                "UPDATE admin_sessions SET last_seen = ? WHERE token_hash = ?", (now, token_hash)
            )

    async def end_admin_session(self, token_hash: str) -> None:
        async with self._write:
            await self.conn.execute(
                "DELETE FROM admin_sessions WHERE token_hash = ?", (token_hash,)
            )

    # -- the audit log -----------------------------------------------------------------

    async def record_audit(self, entry: AuditEntry) -> None:
        async with self._write:
            await self.conn.execute(
                "INSERT INTO audit_log (at, operator, action, scope, target, detail) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (entry.at, entry.operator, entry.action, entry.scope, entry.target, entry.detail),
            )

    async def audit_log(
        self, *, scope: str | None = None, target: str | None = None, limit: int = 50
    ) -> list[AuditEntry]:
        sql, args = audit_sql(scope, target, limit)
        return [audit_from_row(row) for row in await self._fetchall(_numbered(sql), (*args,))]

    # -- the page's queries ------------------------------------------------------------

    async def list_users(self, query: UserQuery) -> UserPage:
        sql, args = user_page_sql(query)
        return user_page(query, await self._fetchall(_numbered(sql), (*args,)))

    async def user_sessions(self, user_id: str) -> list[SessionRecord]:
        rows = await self._fetchall(
            f"SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = ? "  # noqa: S608
            "ORDER BY created DESC, rowid DESC",
            (user_id,),
        )
        return [SessionRecord(*row) for row in rows]

    async def joins_per_day(self, scope: str, since: float) -> list[DayCount]:
        return [DayCount(*row) for row in await self._fetchall(_JOINS_PER_DAY, (scope, since))]

    async def logins_per_day(self, scope: str, since: float) -> list[DayCount]:
        return [DayCount(*row) for row in await self._fetchall(_LOGINS_PER_DAY, (scope, since))]

    async def pending_count(self, scope: str) -> int:
        row = await self._fetchone(
            "SELECT count(*) FROM users WHERE scope = ? AND confirmation IS NOT NULL", (scope,)
        )
        return int(row[0])

    async def locked_identifiers(self, scope: str, now: float) -> list[tuple[str, float]]:
        rows = await self._fetchall(
            "SELECT identifier, locked_until FROM lockouts WHERE scope = ? AND locked_until > ? "
            "ORDER BY identifier",
            (scope, now),
        )
        return [(str(row[0]), float(row[1])) for row in rows]

    async def failed_count(self, scope: str, since: float) -> int:
        row = await self._fetchone(
            "SELECT count(*) FROM failed_logins WHERE scope = ? AND at >= ?", (scope, since)
        )
        return int(row[0])


def _numbered(sql: str) -> str:
    """A statement of `admin_rows` as SQLite reads it: ``$N`` as ``?N``."""
    return sql.replace("$", "?")
