"""The PostgreSQL store's foundation: the connection pool (asyncpg), the schema's migrations
(table ``corelogin_schema``, under an advisory lock), transactions, and what a lost database
becomes (`StoreUnavailable`).

Several server processes share one database: nothing here is cached between calls, so a
revoke on one instance holds on every other at once.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final, TypeAlias
from urllib.parse import urlsplit

import asyncpg

from corelogin.server.store.base import StoreError, StoreUnavailable, UserRecord
from corelogin.server.store.postgres_schema import MIGRATIONS
from corelogin.server.store.rows import USER_COLUMNS, user_from_row, user_row

__all__ = ["GET_USER_BY_ID", "Conn", "PostgresBase", "lock_key", "unavailable"]

# A connection lent by the pool.
Conn: TypeAlias = "asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"

GET_USER_BY_ID: Final = f"SELECT {USER_COLUMNS} FROM users WHERE user_id = $1"  # noqa: S608

# What a database that is down, restarting, out of connections or cut off looks like: the
# call may be tried again. Constraint violations and bugs are not among them.
_LOST: Final = (
    asyncpg.PostgresConnectionError,  # connection refused, closed mid-call
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, crash, statement timeout
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections
    asyncpg.exceptions.TransactionRollbackError,  # deadlock, serialization failure
    asyncpg.InterfaceError,  # the connection is closed, the pool is closing
    # A connection whose backend was terminated while idle can be left in a state asyncpg
    # cannot go on from (MagicStack/asyncpg#1069): it is thrown away like a closed one.
    asyncpg.InternalClientError,
    OSError,  # network
    TimeoutError,  # no connection or no answer in time
)


def unavailable(exc: BaseException) -> StoreUnavailable:
    """The one-line `StoreUnavailable` for a lost database (no URL, so no credentials)."""
    return StoreUnavailable(f"the database is unavailable ({type(exc).__name__})")


def lock_key(*parts: str) -> int:
    """The key of a transaction's advisory lock (``pg_advisory_xact_lock($1)``) on the thing
    ``parts`` name: 64 bits of their SHA-256, as a signed bigint."""
    digest = hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def _keep_session(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """What the pool does to a connection given back, besides rolling back a transaction left
    open: nothing. asyncpg's default (``RESET ALL``, ``UNLISTEN *``...) would cost a round trip
    per call, and the store sets no session state: its locks are transaction-scoped."""


# Migrations of concurrently starting servers take turns on this lock (per schema).
_MIGRATION_LOCK: Final = (
    "SELECT pg_advisory_xact_lock(hashtextextended('corelogin-migrate:' || current_schema(), 0))"
)


class PostgresBase:
    """The pool of the PostgreSQL store, its schema and its transactions; the store's methods
    live in the classes that build on it (`PostgresStore`). Every statement runs on a
    connection of the pool, and every write that reads first locks what it reads."""

    def __init__(
        self, url: str, *, pool_min: int = 2, pool_max: int = 10, timeout: float = 10.0
    ) -> None:
        self.url = url
        self.pool_min = min(pool_min, pool_max)
        self.pool_max = pool_max
        self.timeout = timeout
        self._pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the store is not open")
        return self._pool

    def _where(self) -> str:
        """The database, for messages: host and name, never the user or a password."""
        parts = urlsplit(self.url)
        return f"{parts.hostname or 'localhost'}{parts.path or ''}"

    async def open(self) -> None:
        """Connect and migrate. Raises `StoreError` with one line for the operator when the
        database cannot be used."""
        try:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=self.pool_min,
                max_size=self.pool_max,
                timeout=self.timeout,
                command_timeout=self.timeout,
                reset=_keep_session,
            )
            await self._migrate()
        except StoreError:
            await self.close()
            raise
        except (*_LOST, asyncpg.PostgresError, ValueError) as exc:
            await self.close()
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise StoreError(
                f"cannot use the PostgreSQL database {self._where()}: {reason}"
            ) from None
        except BaseException:
            await self.close()
            raise

    async def _migrate(self) -> None:
        """Bring the schema up to date, in one transaction under an advisory lock, so that of
        servers starting together on a new database one migrates and the others then find it
        done."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(_MIGRATION_LOCK)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS corelogin_schema (version INTEGER NOT NULL)"
            )
            version = await conn.fetchval("SELECT max(version) FROM corelogin_schema") or 0
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"database schema version {version} is newer than this corelogin "
                    f"({len(MIGRATIONS)}); upgrade corelogin"
                )
            for number, script in enumerate(MIGRATIONS, start=1):
                if number > version:
                    await conn.execute(script)
                    await conn.execute("INSERT INTO corelogin_schema (version) VALUES ($1)", number)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), self.timeout)
            except (*_LOST, asyncpg.PostgresError):
                pool.terminate()

    async def ping(self) -> None:
        await self._fetchval("SELECT 1")

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Conn]:
        """A connection of the pool; a lost database raises `StoreUnavailable`, and the
        connection it broke is closed, so that the pool opens a new one in its place."""
        try:
            async with self.pool.acquire(timeout=self.timeout) as conn:
                try:
                    yield conn
                except _LOST:
                    conn.terminate()
                    raise
        except _LOST as exc:
            raise unavailable(exc) from exc

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Conn]:
        """A transaction: committed if the block ends normally, else rolled back."""
        async with self._connection() as conn, conn.transaction():
            yield conn

    async def _fetchrow(self, sql: str, *args: Any) -> Any:
        async with self._connection() as conn:
            return await conn.fetchrow(sql, *args)

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        async with self._connection() as conn:
            return list(await conn.fetch(sql, *args))

    async def _fetchval(self, sql: str, *args: Any) -> Any:
        async with self._connection() as conn:
            return await conn.fetchval(sql, *args)

    async def _execute(self, sql: str, *args: Any) -> str:
        async with self._connection() as conn:
            return str(await conn.execute(sql, *args))

    async def _insert_user(self, conn: Conn, user: UserRecord) -> None:
        await conn.execute(
            "INSERT INTO users (user_id, scope, username, username_key, email, email_key, "
            "password_hash, active, confirmation, user_group, extra, created) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            *user_row(user),
        )

    async def _lock_user(self, conn: Conn, user_id: str) -> UserRecord | None:
        """The user, its row locked until the transaction ends (writes that read the user
        first take turns)."""
        row = await conn.fetchrow(GET_USER_BY_ID + " FOR UPDATE", user_id)
        return None if row is None else user_from_row(row)
