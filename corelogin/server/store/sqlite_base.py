"""The SQLite store's foundation: the connection (WAL mode), the schema's migrations
(``PRAGMA user_version``), transactions, and the reading and writing of user rows."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, Final

import aiosqlite

from corelogin.server.limits import LocalHits
from corelogin.server.store.base import StoreError, UserRecord, email_key
from corelogin.server.store.rows import USER_COLUMNS, user_row
from corelogin.server.store.sqlite_schema import MIGRATIONS

__all__ = [
    "FIND_BY_EMAIL",
    "FIND_BY_USERNAME",
    "GET_USER",
    "GET_USER_BY_ID",
    "SQLiteBase",
]

FIND_BY_USERNAME: Final = f"SELECT {USER_COLUMNS} FROM users WHERE scope = ? AND username_key = ?"  # noqa: S608
FIND_BY_EMAIL: Final = f"SELECT {USER_COLUMNS} FROM users WHERE scope = ? AND email_key = ?"  # noqa: S608
GET_USER: Final = f"SELECT {USER_COLUMNS} FROM users WHERE scope = ? AND user_id = ?"  # noqa: S608
GET_USER_BY_ID: Final = f"SELECT {USER_COLUMNS} FROM users WHERE user_id = ?"  # noqa: S608

# The write transaction the running task is inside (its reads are part of it). A task started
# inside one inherits the mark, which no longer matches once that transaction has ended.
_inside: ContextVar[object | None] = ContextVar("corelogin_sqlite_transaction", default=None)


class SQLiteBase:
    """The connection of the SQLite store, its schema and its transactions; the store's
    methods live in the classes that build on it (`SQLiteStore`). One connection (aiosqlite
    serialises its use on a worker thread).

    Writes take ``_write`` so that no statement can slip into another coroutine's transaction.
    Reads wait for it too while a transaction is open: on the one connection they would
    otherwise see its writes half done (a code deleted and not yet replaced).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: aiosqlite.Connection | None = None
        self._write = asyncio.Lock()
        # The transaction open on the connection (its mark), and an event set when none is.
        self._open: object | None = None
        self._closed = asyncio.Event()
        self._closed.set()
        # Rate limits' counts: one process serves a SQLite database, so memory is enough.
        self._hits = LocalHits()

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

    async def count_hit(self, key: str, window: float, now: float) -> tuple[float, int]:
        return await self._hits.count_hit(key, window, now)

    async def ping(self) -> None:
        await self.conn.execute("SELECT 1")

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction: committed if the block ends normally, else rolled back."""
        async with self._write:
            conn = self.conn
            self._open = mark = object()  # before BEGIN: reads queued from now on wait
            self._closed.clear()
            inside = _inside.set(mark)
            try:
                await conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    await conn.execute("ROLLBACK")
                    raise
                await conn.execute("COMMIT")
            finally:
                _inside.reset(inside)
                self._open = None
                self._closed.set()

    async def _fetchall(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        """The rows of a query, in one trip to aiosqlite's thread (a cursor, fetched and then
        closed, would take three). Outside the open transaction, it first waits for that to
        end (one-statement writes need no wait: each is whole); with none open it goes at
        once, queued by aiosqlite before any later BEGIN."""
        while self._open is not None and _inside.get() is not self._open:
            await self._closed.wait()
        return list(await self.conn.execute_fetchall(sql, args))

    async def _fetchone(self, sql: str, args: tuple[Any, ...]) -> Any:
        rows = await self._fetchall(sql, args)
        return rows[0] if rows else None

    async def _insert_user(self, conn: aiosqlite.Connection, user: UserRecord) -> None:
        await conn.execute(
            "INSERT INTO users (user_id, scope, username, username_key, email, email_key, "
            "password_hash, active, confirmation, user_group, extra, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            user_row(user),
        )
