"""SQLite store (aiosqlite): the zero-setup default. WAL mode; schema versioned by user_version."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

import aiosqlite
import attrs

from corelogin.server.store.base import (
    CodeRecord,
    CodeState,
    DuplicateLinkError,
    DuplicateUserError,
    LoginEvent,
    ProviderLink,
    SessionRecord,
    StoreError,
    UserChanges,
    UserRecord,
    apply_changes,
    email_key,
    username_key,
)
from corelogin.server.store.sqlite_schema import MIGRATIONS

__all__ = ["SQLiteStore"]

_USER_COLUMNS: Final = (
    "user_id, scope, username, email, password_hash, active, confirmation, user_group, extra, "
    "created"
)


_FIND_BY_USERNAME: Final = f"SELECT {_USER_COLUMNS} FROM users WHERE scope = ? AND username_key = ?"  # noqa: S608
_FIND_BY_EMAIL: Final = f"SELECT {_USER_COLUMNS} FROM users WHERE scope = ? AND email_key = ?"  # noqa: S608
_GET_USER: Final = f"SELECT {_USER_COLUMNS} FROM users WHERE scope = ? AND user_id = ?"  # noqa: S608
_LINK_COLUMNS: Final = (
    "user_id, scope, provider, client_id, access_token, access_token_expiry, created"
)
_GET_USER_BY_ID: Final = f"SELECT {_USER_COLUMNS} FROM users WHERE user_id = ?"  # noqa: S608


def _user(row: sqlite3.Row | tuple[Any, ...]) -> UserRecord:
    extra = row[8]
    return UserRecord(
        user_id=row[0],
        scope=row[1],
        username=row[2],
        email=row[3],
        password_hash=row[4],
        active=bool(row[5]),
        confirmation=row[6],
        group=row[7],
        extra=None if extra is None else json.loads(extra),
        created=row[9],
    )


class SQLiteStore:
    """One connection (aiosqlite serialises its use on a worker thread).

    Writes take ``_write`` so that no statement can slip into another coroutine's transaction.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: aiosqlite.Connection | None = None
        self._write = asyncio.Lock()

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("the store is not open")
        return self._conn

    async def open(self) -> None:
        """Open (creating the file readable by its owner only), set up and migrate.

        Raises `StoreError` with one line for the operator when the file cannot be used.
        """
        try:
            if self.path != ":memory:":
                # SQLite gives its -wal and -shm files the database file's mode.
                os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
            self._conn = await aiosqlite.connect(self.path, isolation_level=None)
            # The busy timeout first: another server may be creating the same new file.
            await self.conn.execute("PRAGMA busy_timeout=10000")
            await self._use_wal()
            await self.conn.execute("PRAGMA synchronous=NORMAL")
            await self.conn.execute("PRAGMA foreign_keys=ON")
            await self.conn.create_function("corelogin_email_key", 1, email_key, deterministic=True)
            await self._migrate()
        except (OSError, sqlite3.Error) as exc:
            await self.close()
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise StoreError(f"cannot use the SQLite database {self.path}: {reason}") from None
        except BaseException:
            await self.close()
            raise

    async def _use_wal(self, attempts: int = 100) -> None:
        """Switch to WAL. SQLite answers "database is locked" at once, without waiting out the
        busy timeout, while another connection switches the same new file: try again."""
        for attempt in range(attempts):
            try:
                await self.conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == attempts - 1:
                    raise
                await asyncio.sleep(0.01 * (1 + attempt % 10))

    async def _migrate(self) -> None:
        """Bring the schema up to date, one version per transaction. Each step reads the
        version inside its own write transaction, so servers starting together on one new file
        take turns and none runs a step twice."""
        for number, script in enumerate(MIGRATIONS, start=1):
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                async with self.conn.execute("PRAGMA user_version") as cur:
                    row = await cur.fetchone()
                version = row[0] if row else 0
                if version > len(MIGRATIONS):
                    raise StoreError(
                        f"database schema version {version} is newer than this corelogin "
                        f"({len(MIGRATIONS)}); upgrade corelogin"
                    )
                if version < number:
                    for statement in filter(str.strip, script.split(";")):
                        await self.conn.execute(statement)
                    await self.conn.execute(f"PRAGMA user_version = {number}")
                await self.conn.execute("COMMIT")
            except BaseException:
                await self.conn.execute("ROLLBACK")
                raise

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()

    async def ping(self) -> None:
        await self.conn.execute("SELECT 1")

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction: committed if the block ends normally, else rolled back."""
        async with self._write:
            conn = self.conn
            await conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")

    async def _fetchone(self, sql: str, args: tuple[Any, ...]) -> Any:
        async with self.conn.execute(sql, args) as cur:
            return await cur.fetchone()

    async def create_user(self, user: UserRecord, code: CodeRecord | None = None) -> None:
        try:
            async with self._transaction() as conn:
                await self._insert_user(conn, user)
                if code is not None:
                    await self._insert_code(conn, code)
        except sqlite3.IntegrityError as exc:
            raise DuplicateUserError(str(exc)) from None

    async def _insert_user(self, conn: aiosqlite.Connection, user: UserRecord) -> None:
        await conn.execute(
            "INSERT INTO users (user_id, scope, username, username_key, email, email_key, "
            "password_hash, active, confirmation, user_group, extra, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                user.user_id,
                user.scope,
                user.username,
                username_key(user.username),
                user.email,
                None if user.email is None else email_key(user.email),
                user.password_hash,
                int(user.active),
                user.confirmation,
                user.group,
                None if user.extra is None else json.dumps(user.extra),
                user.created,
            ),
        )

    async def get_user(self, scope: str, user_id: str) -> UserRecord | None:
        row = await self._fetchone(_GET_USER, (scope, user_id))
        return None if row is None else _user(row)

    async def update_user(self, user_id: str, changes: UserChanges) -> UserRecord | None:
        try:
            async with self._transaction() as conn:
                row = await self._fetchone(_GET_USER_BY_ID, (user_id,))
                if row is None:
                    return None
                old = _user(row)
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
                for purpose in _expired_links(old, new):
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

    async def set_confirmation(self, user_id: str, state: str) -> None:
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE users SET confirmation = ? WHERE user_id = ? AND confirmation IS NOT NULL",
                (state, user_id),
            )

    async def _insert_code(self, conn: aiosqlite.Connection, code: CodeRecord) -> None:
        await conn.execute(
            "INSERT INTO codes (code_hash, user_id, purpose, created, expires, counted, mail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                code.code_hash,
                code.user_id,
                code.purpose,
                code.created,
                code.expires,
                int(code.counted),
                None if code.mail is None else json.dumps(code.mail),
            ),
        )

    async def replace_code(self, code: CodeRecord, *, min_interval: float = 0) -> bool:
        async with self._transaction() as conn:
            if code.counted:
                row = await self._fetchone(
                    "SELECT max(created) FROM codes WHERE user_id = ? AND purpose = ? "
                    "AND counted = 1",
                    (code.user_id, code.purpose),
                )
                if row[0] is not None and code.created - row[0] < min_interval:
                    return False
            await conn.execute(
                "DELETE FROM codes WHERE user_id = ? AND purpose = ?", (code.user_id, code.purpose)
            )
            await self._insert_code(conn, code)
            return True

    async def confirmation_settings(self, user_id: str) -> dict[str, Any] | None:
        row = await self._fetchone(
            "SELECT mail FROM codes WHERE user_id = ? AND purpose = 'confirm' "
            "ORDER BY created DESC LIMIT 1",
            (user_id,),
        )
        return None if row is None or row[0] is None else dict(json.loads(row[0]))

    async def code_user(self, code_hash: str) -> UserRecord | None:
        row = await self._fetchone(
            f"SELECT {_USER_COLUMNS} FROM users WHERE user_id = "  # noqa: S608
            "(SELECT user_id FROM codes WHERE code_hash = ?)",
            (code_hash,),
        )
        return None if row is None else _user(row)

    async def peek_code(self, code_hash: str, purpose: str, now: float) -> CodeState:
        row = await self._fetchone(
            "SELECT used, expires FROM codes WHERE code_hash = ? AND purpose = ?",
            (code_hash, purpose),
        )
        return _code_state(row, now)

    async def use_code(
        self, code_hash: str, purpose: str, now: float, *, password_hash: str | None = None
    ) -> CodeState:
        async with self._transaction() as conn:
            row = await self._fetchone(
                "SELECT used, expires, user_id FROM codes WHERE code_hash = ? AND purpose = ?",
                (code_hash, purpose),
            )
            state = _code_state(row, now)
            if state is not CodeState.VALID:
                return state
            user_id = row[2]
            await conn.execute("UPDATE codes SET used = ? WHERE code_hash = ?", (now, code_hash))
            if purpose == "confirm":
                await conn.execute(
                    "UPDATE users SET active = 1, confirmation = NULL WHERE user_id = ?",
                    (user_id,),
                )
            elif password_hash is not None:
                await conn.execute(
                    "UPDATE users SET password_hash = ? WHERE user_id = ?",
                    (password_hash, user_id),
                )
                await conn.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
            return state

    async def user_exists(self, scope: str, username: str, email: str | None) -> bool:
        async with self.conn.execute(
            "SELECT 1 FROM users WHERE scope = ? AND (username_key = ? OR email_key = ?)",
            (
                scope,
                username_key(username),
                None if email is None else email_key(email),
            ),
        ) as cur:
            return await cur.fetchone() is not None

    async def find_user(
        self, scope: str, *, username: str | None = None, email: str | None = None
    ) -> UserRecord | None:
        if username is not None:
            sql, key = _FIND_BY_USERNAME, username_key(username)
        elif email is not None:
            sql, key = _FIND_BY_EMAIL, email_key(email)
        else:
            raise ValueError("username or email is required")
        async with self.conn.execute(sql, (scope, key)) as cur:
            row = await cur.fetchone()
        return None if row is None else _user(row)

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

    async def open_session(self, session: SessionRecord, login: LoginEvent | None) -> None:
        async with self._write:
            await self._open_session(session, login)

    async def _open_session(self, session: SessionRecord, login: LoginEvent | None) -> None:
        conn = self.conn
        await conn.execute("BEGIN")
        try:
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
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")

    async def login_events(self, user_id: str) -> list[LoginEvent]:
        async with self.conn.execute(
            "SELECT user_id, at, remote, user_agent FROM login_events WHERE user_id = ? "
            "ORDER BY at, id",
            (user_id,),
        ) as cur:
            rows = await cur.fetchall()
        return [LoginEvent(*row) for row in rows]

    # -- provider links ----------------------------------------------------------------

    async def add_link(self, link: ProviderLink) -> None:
        try:
            async with self._transaction() as conn:
                await self._insert_link(conn, link)
        except sqlite3.IntegrityError as exc:
            raise DuplicateLinkError(str(exc)) from None

    async def _insert_link(self, conn: aiosqlite.Connection, link: ProviderLink) -> None:
        await conn.execute(
            f"INSERT INTO provider_links ({_LINK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            attrs.astuple(link),
        )

    async def get_link(self, user_id: str, provider: str) -> ProviderLink | None:
        row = await self._fetchone(
            f"SELECT {_LINK_COLUMNS} FROM provider_links WHERE user_id = ? AND provider = ?",  # noqa: S608
            (user_id, provider),
        )
        return None if row is None else ProviderLink(*row)

    async def update_link(self, user_id: str, provider: str, **changes: Any) -> ProviderLink | None:
        try:
            async with self._transaction():
                link = await self.get_link(user_id, provider)
                if link is None:
                    return None
                link = attrs.evolve(link, **changes)
                await self.conn.execute(
                    "UPDATE provider_links SET client_id = ?, access_token = ?, "
                    "access_token_expiry = ? WHERE user_id = ? AND provider = ?",
                    (
                        link.client_id,
                        link.access_token,
                        link.access_token_expiry,
                        user_id,
                        provider,
                    ),
                )
                return link
        except sqlite3.IntegrityError as exc:
            raise DuplicateLinkError(str(exc)) from None

    async def remove_link(self, user_id: str, provider: str) -> bool:
        async with self._transaction() as conn:
            cur = await conn.execute(
                "DELETE FROM provider_links WHERE user_id = ? AND provider = ?",
                (user_id, provider),
            )
            return cur.rowcount > 0

    async def find_link(
        self, scope: str, provider: str, client_id: str
    ) -> tuple[UserRecord, ProviderLink] | None:
        row = await self._fetchone(
            f"SELECT {_LINK_COLUMNS} FROM provider_links "  # noqa: S608
            "WHERE scope = ? AND provider = ? AND client_id = ?",
            (scope, provider, client_id),
        )
        if row is None:
            return None
        link = ProviderLink(*row)
        user = await self._fetchone(_GET_USER_BY_ID, (link.user_id,))
        return None if user is None else (_user(user), link)

    async def signup_with_link(
        self, user: UserRecord, link: ProviderLink
    ) -> tuple[UserRecord, ProviderLink]:
        try:
            async with self._transaction() as conn:
                found = await self.find_link(link.scope, link.provider, link.client_id)
                if found is not None:
                    return found
                await self._insert_user(conn, user)
                await self._insert_link(conn, link)
                return user, link
        except sqlite3.IntegrityError as exc:  # the username (or email) is taken
            raise DuplicateUserError(str(exc)) from None

    async def session(self, token_hash: str) -> SessionRecord | None:
        row = await self._fetchone(
            "SELECT token_hash, user_id, created, expires, last_seen FROM sessions "
            "WHERE token_hash = ?",
            (token_hash,),
        )
        return None if row is None else SessionRecord(*row)

    async def touch_session(self, token_hash: str, now: float) -> None:
        async with self._write:
            await self.conn.execute(
                "UPDATE sessions SET last_seen = ? WHERE token_hash = ?", (now, token_hash)
            )

    async def revoke_sessions(self, user_id: str) -> None:
        async with self._write:
            await self.conn.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))

    async def session_user(self, token_hash: str, now: float) -> str | None:
        async with self.conn.execute(
            "SELECT user_id FROM sessions WHERE token_hash = ? AND expires > ?",
            (token_hash, now),
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else str(row[0])


def _expired_links(old: UserRecord, new: UserRecord) -> list[str]:
    """The purposes of the links an update makes worthless: both when the address changes
    (they went to the old one), reset links when the password changes."""
    if new.email != old.email:
        return ["confirm", "reset"]
    return ["reset"] if new.password_hash != old.password_hash else []


def _code_state(row: Any, now: float) -> CodeState:
    if row is None:
        return CodeState.UNKNOWN
    if row[0] is not None:
        return CodeState.USED
    if row[1] <= now:
        return CodeState.EXPIRED
    return CodeState.VALID
