"""The PostgreSQL store's part of the admin page (issue 12): operators and their sessions, the
audit log, and the page's queries (users by page, the day's figures).

The tables are the SQLite store's (see `corelogin.server.store.sqlite_admin`), and so are the
statements of the pages of users and of the audit log (`corelogin.server.store.admin_rows`).
Every write is one statement, so one round trip and one transaction: a new password ends the
operator's sessions in the statement that sets it.
"""

from __future__ import annotations

from typing import Final

import asyncpg

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
from corelogin.server.store.postgres_base import PostgresBase
from corelogin.server.store.rows import SESSION_COLUMNS

__all__ = ["PostgresAdmin"]

_ADMIN_SESSION: Final = (
    "SELECT s.token_hash, s.operator, s.created, s.expires, s.last_seen FROM admin_sessions s "
    "JOIN operators o ON o.name = s.operator WHERE s.token_hash = $1"
)
# The new hash and the end of the operator's sessions, in one statement: the count of
# operators changed (0: none of that name).
_NEW_HASH: Final = (
    "WITH changed AS (UPDATE operators SET password_hash = $2 WHERE name = $1 RETURNING name), "
    "ended AS (DELETE FROM admin_sessions WHERE operator IN (SELECT name FROM changed)) "
    "SELECT count(*) FROM changed"
)
# A Unix time's UTC date, as SQLite's date(at, 'unixepoch') gives it.
_DAY: Final = "to_char(to_timestamp({}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
_JOINS_PER_DAY: Final = (
    f"SELECT {_DAY.format('created')} AS day, count(*) FROM users "  # noqa: S608
    "WHERE scope = $1 AND created >= $2::float8 GROUP BY day ORDER BY day"
)
_LOGINS_PER_DAY: Final = (
    f"SELECT {_DAY.format('e.at')} AS day, count(*) FROM login_events e "  # noqa: S608
    "JOIN users u ON u.user_id = e.user_id WHERE u.scope = $1 AND e.at >= $2 "
    "GROUP BY day ORDER BY day"
)


class PostgresAdmin(PostgresBase):
    """Operators, their sessions, the audit log and the admin page's queries."""

    # -- operators ---------------------------------------------------------------------

    async def add_operator(self, operator: Operator) -> None:
        try:
            await self._execute(
                "INSERT INTO operators (name, password_hash, created) VALUES ($1, $2, $3)",
                operator.name,
                operator.password_hash,
                operator.created,
            )
        except asyncpg.UniqueViolationError:
            raise DuplicateOperatorError(operator.name) from None

    async def get_operator(self, name: str) -> Operator | None:
        row = await self._fetchrow(
            "SELECT name, password_hash, created FROM operators WHERE name = $1", name
        )
        return None if row is None else Operator(*row)

    async def set_operator_password(self, name: str, password_hash: str) -> bool:
        return bool(await self._fetchval(_NEW_HASH, name, password_hash))

    async def remove_operator(self, name: str) -> bool:
        # Its sessions go by the foreign key's cascade.
        status = await self._execute("DELETE FROM operators WHERE name = $1", name)
        return status != "DELETE 0"

    # -- their sessions ----------------------------------------------------------------

    async def open_admin_session(self, session: AdminSession) -> None:
        try:
            await self._execute(
                "INSERT INTO admin_sessions (token_hash, operator, created, expires, last_seen) "
                "VALUES ($1, $2, $3, $4, $5)",
                session.token_hash,
                session.operator,
                session.created,
                session.expires,
                session.last_seen,
            )
        except asyncpg.ForeignKeyViolationError:
            raise LookupError("the operator does not exist") from None

    async def admin_session(self, token_hash: str) -> AdminSession | None:
        row = await self._fetchrow(_ADMIN_SESSION, token_hash)
        return None if row is None else AdminSession(*row)

    async def touch_admin_session(self, token_hash: str, now: float) -> None:
        await self._execute(
            "UPDATE admin_sessions SET last_seen = $1 WHERE token_hash = $2", now, token_hash
        )

    async def end_admin_session(self, token_hash: str) -> None:
        await self._execute("DELETE FROM admin_sessions WHERE token_hash = $1", token_hash)

    # -- the audit log -----------------------------------------------------------------

    async def record_audit(self, entry: AuditEntry) -> None:
        await self._execute(
            "INSERT INTO audit_log (at, operator, action, scope, target, detail) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            entry.at,
            entry.operator,
            entry.action,
            entry.scope,
            entry.target,
            entry.detail,
        )

    async def audit_log(
        self, *, scope: str | None = None, target: str | None = None, limit: int = 50
    ) -> list[AuditEntry]:
        sql, args = audit_sql(scope, target, limit)
        return [audit_from_row(row) for row in await self._fetch(sql, *args)]

    # -- the page's queries ------------------------------------------------------------

    async def list_users(self, query: UserQuery) -> UserPage:
        sql, args = user_page_sql(query)
        return user_page(query, await self._fetch(sql, *args))

    async def user_sessions(self, user_id: str) -> list[SessionRecord]:
        rows = await self._fetch(
            f"SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1 "  # noqa: S608
            "ORDER BY created DESC, id DESC",
            user_id,
        )
        return [SessionRecord(*row) for row in rows]

    async def joins_per_day(self, scope: str, since: float) -> list[DayCount]:
        return [DayCount(*row) for row in await self._fetch(_JOINS_PER_DAY, scope, since)]

    async def logins_per_day(self, scope: str, since: float) -> list[DayCount]:
        return [DayCount(*row) for row in await self._fetch(_LOGINS_PER_DAY, scope, since)]

    async def pending_count(self, scope: str) -> int:
        count = await self._fetchval(
            "SELECT count(*) FROM users WHERE scope = $1 AND confirmation IS NOT NULL", scope
        )
        return int(count)

    async def locked_identifiers(self, scope: str, now: float) -> list[tuple[str, float]]:
        rows = await self._fetch(
            "SELECT identifier, locked_until FROM lockouts WHERE scope = $1 "
            'AND locked_until > $2 ORDER BY identifier COLLATE "C"',
            scope,
            now,
        )
        return [(str(row[0]), float(row[1])) for row in rows]

    async def failed_count(self, scope: str, since: float) -> int:
        count = await self._fetchval(
            "SELECT count(*) FROM failed_logins WHERE scope = $1 AND at >= $2", scope, since
        )
        return int(count)
