"""SQLite store (aiosqlite): the zero-setup default. WAL mode; schema versioned by user_version."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from typing import Any, Final

import aiosqlite

from corelogin.server.store.base import (
    DuplicateUserError,
    LoginEvent,
    SessionRecord,
    StoreError,
    UserRecord,
    email_key,
    username_key,
)

__all__ = ["SQLiteStore"]

# One script per schema version; version N is reached by running scripts[:N] in order.
MIGRATIONS: Final = (
    """
    CREATE TABLE users (
        user_id       TEXT PRIMARY KEY,
        scope         TEXT NOT NULL,
        username      TEXT NOT NULL,
        username_key  TEXT NOT NULL,
        email         TEXT,
        email_key     TEXT,
        password_hash TEXT NOT NULL,
        active        INTEGER NOT NULL,
        confirmation  TEXT,
        user_group    TEXT,
        extra         TEXT,
        created       INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX users_username ON users (scope, username_key);
    CREATE UNIQUE INDEX users_email ON users (scope, email_key);
    CREATE TABLE login_events (
        id         INTEGER PRIMARY KEY,
        user_id    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
        at         REAL NOT NULL,
        remote     TEXT,
        user_agent TEXT
    );
    CREATE INDEX login_events_user ON login_events (user_id, at);
    CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,
        user_id    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
        created    REAL NOT NULL,
        last_seen  REAL NOT NULL,
        expires    REAL NOT NULL
    );
    CREATE INDEX sessions_user ON sessions (user_id);
    """,
    # 2: email keys are NFKC-normalised too (corelogin_email_key is store.base.email_key).
    """
    UPDATE users SET email_key = corelogin_email_key(email) WHERE email IS NOT NULL;
    """,
)

_USER_COLUMNS: Final = (
    "user_id, scope, username, email, password_hash, active, confirmation, user_group, extra, "
    "created"
)


_FIND_BY_USERNAME: Final = f"SELECT {_USER_COLUMNS} FROM users WHERE scope = ? AND username_key = ?"  # noqa: S608
_FIND_BY_EMAIL: Final = f"SELECT {_USER_COLUMNS} FROM users WHERE scope = ? AND email_key = ?"  # noqa: S608


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

    async def create_user(self, user: UserRecord) -> None:
        try:
            async with self._write:
                await self.conn.execute(
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
        except sqlite3.IntegrityError as exc:
            raise DuplicateUserError(str(exc)) from None

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

    async def session_user(self, token_hash: str, now: float) -> str | None:
        async with self.conn.execute(
            "SELECT user_id FROM sessions WHERE token_hash = ? AND expires > ?",
            (token_hash, now),
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else str(row[0])
