"""SQLite store (aiosqlite): the zero-setup default. WAL mode; schema versioned by user_version."""

from __future__ import annotations

import json
import sqlite3

import aiosqlite

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
from corelogin.server.store.rows import (
    SESSION_COLUMNS,
    SESSION_OWNER,
    expired_links,
    session_owner_from_row,
    user_from_row,
)
from corelogin.server.store.sqlite_admin import SQLiteAdmin
from corelogin.server.store.sqlite_base import (
    FIND_BY_EMAIL,
    FIND_BY_USERNAME,
    GET_USER,
    GET_USER_BY_ID,
)
from corelogin.server.store.sqlite_codes import SQLiteCodes
from corelogin.server.store.sqlite_failures import SQLiteFailures
from corelogin.server.store.sqlite_links import SQLiteLinks

__all__ = ["SQLiteStore"]


class SQLiteStore(SQLiteCodes, SQLiteLinks, SQLiteFailures, SQLiteAdmin):
    """The SQLite store: users and sessions here; codes, links, failed logins and the admin
    page's operators and queries in the classes it builds on, over the connection of
    `SQLiteBase`."""

    session_limit: SessionLimit = SessionLimit()

    async def create_user(self, user: UserRecord, code: CodeRecord | None = None) -> None:
        try:
            async with self._transaction() as conn:
                await self._insert_user(conn, user)
                if code is not None:
                    await self._insert_code(conn, code)
        except sqlite3.IntegrityError as exc:
            raise DuplicateUserError(str(exc)) from None

    async def get_user(self, scope: str, user_id: str) -> UserRecord | None:
        row = await self._fetchone(GET_USER, (scope, user_id))
        return None if row is None else user_from_row(row)

    async def update_user(self, user_id: str, changes: UserChanges) -> UserRecord | None:
        try:
            async with self._transaction() as conn:
                row = await self._fetchone(GET_USER_BY_ID, (user_id,))
                if row is None:
                    return None
                old = user_from_row(row)
                new = apply_changes(old, changes)
                await conn.execute(
                    "UPDATE users SET username = ?, username_key = ?, email = ?, email_key = ?, "
                    "password_hash = ?, active = ?, confirmation = ?, user_group = ?, extra = ? "
                    "WHERE user_id = ?",
                    (
                        new.username,
                        username_key(new.username),
                        new.email,
                        None if new.email is None else email_key(new.email),
                        new.password_hash,
                        int(new.active),
                        new.confirmation,
                        new.group,
                        None if new.extra is None else json.dumps(new.extra),
                        user_id,
                    ),
                )
                if old.confirmation is not None and new.confirmation is None:
                    await conn.execute(
                        "DELETE FROM codes WHERE user_id = ? AND purpose = 'confirm'", (user_id,)
                    )
                for purpose in expired_links(old, new):
                    await conn.execute(
                        "UPDATE codes SET expires = 0 WHERE user_id = ? AND purpose = ? "
                        "AND used IS NULL",
                        (user_id, purpose),
                    )
                if changes.revoke == "all":
                    await conn.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
                elif changes.revoke == "others":
                    await conn.execute(
                        "DELETE FROM sessions WHERE user_id = ? AND token_hash IS NOT ?",
                        (user_id, changes.keep),
                    )
                return new
        except sqlite3.IntegrityError as exc:
            raise DuplicateUserError(str(exc)) from None

    async def delete_user(self, scope: str, user_id: str) -> bool:
        async with self._transaction() as conn:
            cur = await conn.execute(
                "DELETE FROM users WHERE scope = ? AND user_id = ?", (scope, user_id)
            )
            return cur.rowcount > 0

    async def user_exists(self, scope: str, username: str, email: str | None) -> bool:
        row = await self._fetchone(
            "SELECT 1 FROM users WHERE scope = ? AND (username_key = ? OR email_key = ?)",
            (
                scope,
                username_key(username),
                None if email is None else email_key(email),
            ),
        )
        return row is not None

    async def find_user(
        self, scope: str, *, username: str | None = None, email: str | None = None
    ) -> UserRecord | None:
        if username is not None:
            sql, key = FIND_BY_USERNAME, username_key(username)
        elif email is not None:
            sql, key = FIND_BY_EMAIL, email_key(email)
        else:
            raise ValueError("username or email is required")
        row = await self._fetchone(sql, (scope, key))
        return None if row is None else user_from_row(row)

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        async with self._write:
            await self.conn.execute(
                "UPDATE users SET password_hash = ? WHERE user_id = ?",
                (password_hash, user_id),
            )

    async def set_active(self, user_id: str, active: bool) -> None:
        async with self._write:
            await self.conn.execute(
                "UPDATE users SET active = ? WHERE user_id = ?", (int(active), user_id)
            )

    async def open_session(
        self,
        session: SessionRecord,
        login: LoginEvent | None,
        *,
        limit: SessionLimit | None = None,
    ) -> None:
        limit = self.session_limit if limit is None else limit
        async with self._transaction() as conn:
            if limit.max_sessions > 0:
                await self._make_room(conn, session, limit)
            await conn.execute(
                "INSERT INTO sessions (token_hash, user_id, created, last_seen, expires) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    session.token_hash,
                    session.user_id,
                    session.created,
                    session.created,
                    session.expires,
                ),
            )
            if login is not None:
                await conn.execute(
                    "INSERT INTO login_events (user_id, at, remote, user_agent) "
                    "VALUES (?, ?, ?, ?)",
                    (login.user_id, login.at, login.remote, login.user_agent),
                )
                # What the admin page sorts and shows by, kept with the event it sums up.
                await conn.execute(
                    "UPDATE users SET last_login = ? WHERE user_id = ?", (login.at, login.user_id)
                )

    async def _make_room(
        self, conn: aiosqlite.Connection, session: SessionRecord, limit: SessionLimit
    ) -> None:
        """In open_session's transaction: end the user's oldest live sessions, or raise
        `SessionLimitReached`, so that ``session`` keeps them within ``limit``. Oldest is by
        rowid, the order the transactions opened them in (concurrent logins may have read the
        clock for ``created`` in another order)."""
        now = session.created
        sql = "SELECT rowid FROM sessions WHERE user_id = ? AND expires > ?"
        args: tuple[object, ...] = (session.user_id, now)
        if limit.idle_seconds is not None:
            sql += " AND last_seen > ?"
            args += (now - limit.idle_seconds,)
        async with conn.execute(sql + " ORDER BY rowid", args) as cur:
            live = [row[0] for row in await cur.fetchall()]
        excess = len(live) + 1 - limit.max_sessions
        if excess <= 0:
            return
        if not limit.evict:
            raise SessionLimitReached()
        await conn.executemany(
            "DELETE FROM sessions WHERE rowid = ?", [(rowid,) for rowid in live[:excess]]
        )

    async def login_events(self, user_id: str) -> list[LoginEvent]:
        rows = await self._fetchall(
            "SELECT user_id, at, remote, user_agent FROM login_events WHERE user_id = ? "
            "ORDER BY at, id",
            (user_id,),
        )
        return [LoginEvent(*row) for row in rows]

    async def session(self, token_hash: str) -> SessionRecord | None:
        row = await self._fetchone(
            f"SELECT {SESSION_COLUMNS} FROM sessions WHERE token_hash = ?",  # noqa: S608
            (token_hash,),
        )
        return None if row is None else SessionRecord(*row)

    async def session_owner(self, token_hash: str) -> tuple[SessionRecord, UserRecord] | None:
        row = await self._fetchone(SESSION_OWNER + "?", (token_hash,))
        return None if row is None else session_owner_from_row(row)

    async def touch_session(self, token_hash: str, now: float) -> None:
        async with self._write:
            await self.conn.execute(
                "UPDATE sessions SET last_seen = ? WHERE token_hash = ?", (now, token_hash)
            )

    async def end_session(self, token_hash: str) -> None:
        async with self._write:
            await self.conn.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))

    async def revoke_sessions(self, user_id: str) -> None:
        async with self._write:
            await self.conn.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))

    async def session_user(self, token_hash: str, now: float) -> str | None:
        row = await self._fetchone(
            "SELECT user_id FROM sessions WHERE token_hash = ? AND expires > ?",
            (token_hash, now),
        )
        return None if row is None else str(row[0])
