"""PostgreSQL store (asyncpg): for several server instances on one database. Uniqueness is the
database's (unique indexes), and every write that reads first locks what it read, so the rules
of DESIGN.md §4 hold across instances."""

from __future__ import annotations

import json

import asyncpg

from corelogin.server.store.base import (
    CodeRecord,
    DuplicateUserError,
    LoginEvent,
    SessionLimit,
    SessionLimitReached,
    SessionRecord,
    UserChanges,
    UserRecord,
    apply_changes,
    email_key,
    username_key,
)
from corelogin.server.store.postgres_admin import PostgresAdmin
from corelogin.server.store.postgres_base import Conn
from corelogin.server.store.postgres_codes import PostgresCodes
from corelogin.server.store.postgres_failures import PostgresFailures
from corelogin.server.store.postgres_limits import PostgresLimits
from corelogin.server.store.postgres_links import PostgresLinks
from corelogin.server.store.rows import (
    SESSION_COLUMNS,
    SESSION_OWNER,
    USER_COLUMNS,
    expired_links,
    session_owner_from_row,
    user_from_row,
)

__all__ = ["PostgresStore"]

_OPEN_SESSION = (
    "INSERT INTO sessions (token_hash, user_id, created, last_seen, expires) "
    "VALUES ($1, $2, $3, $3, $4)"
)
# The session, its login event and the user's last_login (what the admin page sorts and shows
# by), in one statement.
_OPEN_SESSION_AND_LOG = (
    f"WITH opened AS ({_OPEN_SESSION} RETURNING user_id), "  # noqa: S608
    "logged AS (INSERT INTO login_events (user_id, at, remote, user_agent) "
    "SELECT user_id, $5, $6, $7 FROM opened) "
    "UPDATE users SET last_login = $5 WHERE user_id = (SELECT user_id FROM opened)"
)
_FIND = f"SELECT {USER_COLUMNS} FROM users WHERE scope = $1 AND "  # noqa: S608


class PostgresStore(PostgresCodes, PostgresLinks, PostgresFailures, PostgresLimits, PostgresAdmin):
    """The PostgreSQL store: users and sessions here; codes, links, failed logins, rate limits
    and the admin page's operators and queries in the classes it builds on, over the pool of
    `PostgresBase`."""

    session_limit: SessionLimit = SessionLimit()

    async def create_user(self, user: UserRecord, code: CodeRecord | None = None) -> None:
        try:
            async with self._transaction() as conn:
                await self._insert_user(conn, user)
                if code is not None:
                    await self._insert_code(conn, code)
        except asyncpg.UniqueViolationError as exc:
            raise DuplicateUserError(str(exc)) from None

    async def get_user(self, scope: str, user_id: str) -> UserRecord | None:
        row = await self._fetchrow(_FIND + "user_id = $2", scope, user_id)
        return None if row is None else user_from_row(row)

    async def update_user(self, user_id: str, changes: UserChanges) -> UserRecord | None:
        try:
            async with self._transaction() as conn:
                old = await self._lock_user(conn, user_id)
                if old is None:
                    return None
                new = apply_changes(old, changes)
                await conn.execute(
                    "UPDATE users SET username = $1, username_key = $2, email = $3, "
                    "email_key = $4, password_hash = $5, active = $6, confirmation = $7, "
                    "user_group = $8, extra = $9 WHERE user_id = $10",
                    new.username,
                    username_key(new.username),
                    new.email,
                    None if new.email is None else email_key(new.email),
                    new.password_hash,
                    new.active,
                    new.confirmation,
                    new.group,
                    None if new.extra is None else json.dumps(new.extra),
                    user_id,
                )
                if old.confirmation is not None and new.confirmation is None:
                    await conn.execute(
                        "DELETE FROM codes WHERE user_id = $1 AND purpose = 'confirm'", user_id
                    )
                for purpose in expired_links(old, new):
                    await conn.execute(
                        "UPDATE codes SET expires = 0 WHERE user_id = $1 AND purpose = $2 "
                        "AND used IS NULL",
                        user_id,
                        purpose,
                    )
                if changes.revoke == "all":
                    await conn.execute("DELETE FROM sessions WHERE user_id = $1", user_id)
                elif changes.revoke == "others":
                    await conn.execute(
                        "DELETE FROM sessions WHERE user_id = $1 "
                        "AND token_hash IS DISTINCT FROM $2",
                        user_id,
                        changes.keep,
                    )
                return new
        except asyncpg.UniqueViolationError as exc:
            raise DuplicateUserError(str(exc)) from None

    async def delete_user(self, scope: str, user_id: str) -> bool:
        status = await self._execute(
            "DELETE FROM users WHERE scope = $1 AND user_id = $2", scope, user_id
        )
        return status != "DELETE 0"

    async def user_exists(self, scope: str, username: str, email: str | None) -> bool:
        row = await self._fetchrow(
            "SELECT 1 FROM users WHERE scope = $1 AND (username_key = $2 OR email_key = $3)",
            scope,
            username_key(username),
            None if email is None else email_key(email),
        )
        return row is not None

    async def find_user(
        self, scope: str, *, username: str | None = None, email: str | None = None
    ) -> UserRecord | None:
        if username is not None:
            row = await self._fetchrow(_FIND + "username_key = $2", scope, username_key(username))
        elif email is not None:
            row = await self._fetchrow(_FIND + "email_key = $2", scope, email_key(email))
        else:
            raise ValueError("username or email is required")
        return None if row is None else user_from_row(row)

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        await self._execute(
            "UPDATE users SET password_hash = $1 WHERE user_id = $2", password_hash, user_id
        )

    async def set_active(self, user_id: str, active: bool) -> None:
        await self._execute("UPDATE users SET active = $1 WHERE user_id = $2", active, user_id)

    async def open_session(
        self,
        session: SessionRecord,
        login: LoginEvent | None,
        *,
        limit: SessionLimit | None = None,
    ) -> None:
        limit = self.session_limit if limit is None else limit
        values: tuple[object, ...] = (
            session.token_hash,
            session.user_id,
            session.created,
            session.expires,
        )
        if login is not None:
            values += (login.at, login.remote, login.user_agent)
        # One statement is one transaction: the usual login costs one round trip.
        sql = _OPEN_SESSION if login is None else _OPEN_SESSION_AND_LOG
        if limit.max_sessions <= 0:
            await self._execute(sql, *values)
            return
        async with self._transaction() as conn:
            await self._make_room(conn, session, limit)
            await conn.execute(sql, *values)

    async def _make_room(self, conn: Conn, session: SessionRecord, limit: SessionLimit) -> None:
        """In open_session's transaction: end the user's oldest live sessions, or raise
        `SessionLimitReached`, so that ``session`` keeps them within ``limit``. The user's row
        is locked first, so that concurrent logins of one user (on any instance) count one
        after the other; oldest is by ``id``, the order they were opened in."""
        await conn.execute("SELECT 1 FROM users WHERE user_id = $1 FOR UPDATE", session.user_id)
        now = session.created
        idle_after = float("-inf") if limit.idle_seconds is None else now - limit.idle_seconds
        live = await conn.fetch(
            "SELECT id FROM sessions WHERE user_id = $1 AND expires > $2 AND last_seen > $3 "
            "ORDER BY id",
            session.user_id,
            now,
            idle_after,
        )
        excess = len(live) + 1 - limit.max_sessions
        if excess <= 0:
            return
        if not limit.evict:
            raise SessionLimitReached()
        await conn.execute(
            "DELETE FROM sessions WHERE id = ANY($1::bigint[])", [row[0] for row in live[:excess]]
        )

    async def login_events(self, user_id: str) -> list[LoginEvent]:
        rows = await self._fetch(
            "SELECT user_id, at, remote, user_agent FROM login_events WHERE user_id = $1 "
            "ORDER BY at, id",
            user_id,
        )
        return [LoginEvent(*row) for row in rows]

    async def session(self, token_hash: str) -> SessionRecord | None:
        row = await self._fetchrow(
            f"SELECT {SESSION_COLUMNS} FROM sessions WHERE token_hash = $1",  # noqa: S608
            token_hash,
        )
        return None if row is None else SessionRecord(*row)

    async def session_owner(self, token_hash: str) -> tuple[SessionRecord, UserRecord] | None:
        row = await self._fetchrow(SESSION_OWNER + "$1", token_hash)
        return None if row is None else session_owner_from_row(row)

    async def touch_session(self, token_hash: str, now: float) -> None:
        await self._execute(
            "UPDATE sessions SET last_seen = $1 WHERE token_hash = $2", now, token_hash
        )

    async def end_session(self, token_hash: str) -> None:
        await self._execute("DELETE FROM sessions WHERE token_hash = $1", token_hash)

    async def revoke_sessions(self, user_id: str) -> None:
        await self._execute("DELETE FROM sessions WHERE user_id = $1", user_id)

    async def session_user(self, token_hash: str, now: float) -> str | None:
        user_id = await self._fetchval(
            "SELECT user_id FROM sessions WHERE token_hash = $1 AND expires > $2",
            token_hash,
            now,
        )
        return None if user_id is None else str(user_id)
