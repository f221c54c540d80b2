"""The store's tests, one suite for every backend: the ``store`` fixture is a store on a
database of the test's own, SQLite (a file) or PostgreSQL (a schema, when
CORELOGIN_TEST_PG_DSN names a server; else skipped with the reason shown), and ``database`` is
that database: more stores on it (as more server instances) and what a separate connection
sees. SQLite-only tests (older SQLite schemas, PRAGMAs, files) use ``path`` and
`database_at_version`."""

from __future__ import annotations

import itertools
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from corelogin.server.store import (
    LoginEvent,
    SessionRecord,
    Store,
    UserRecord,
    email_key,
    is_postgres,
    open_store,
)
from corelogin.server.store.base import FailedLogin, LockoutRule, SessionLimit
from corelogin.server.store.sqlite_schema import MIGRATIONS

if TYPE_CHECKING:
    import asyncpg

BACKENDS = ["sqlite", "postgresql"]


class Database:
    """The database under a test's stores, whichever backend (``url`` as `open_store` takes
    it). Every store it opens is closed at the end of the test."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.backend = "postgresql" if is_postgres(url) else "sqlite"
        self._stores: list[Store] = []
        self._conn: asyncpg.Connection | None = None

    @property
    def integrity_error(self) -> type[Exception]:
        """What the driver raises for a write that breaks a constraint the store does not
        translate (a token hash used twice)."""
        if self.backend == "sqlite":
            return sqlite3.IntegrityError
        import asyncpg

        return asyncpg.UniqueViolationError

    async def open_another(self) -> Store:
        """Another store on this database, open: its own connection (SQLite) or pool
        (PostgreSQL), as another server instance has."""
        store = open_store(self.url, pool_min=1, timeout=5.0)
        self._stores.append(store)
        await store.open()
        return store

    async def rows(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        """What a separate connection sees: the rows of ``sql`` (``?`` placeholders), booleans
        as SQLite gives them (0 and 1)."""
        if self.backend == "sqlite":
            return sqlite_rows(Path(self.url), sql, *args)
        numbers = itertools.count(1)
        records = await (await self._connection()).fetch(
            re.sub(r"\?", lambda _: f"${next(numbers)}", sql), *args
        )
        return [
            tuple(int(value) if isinstance(value, bool) else value for value in record)
            for record in records
        ]

    async def columns(self, table: str) -> set[str]:
        """The names of a table's columns."""
        if self.backend == "sqlite":
            return {str(row[1]) for row in await self.rows(f"PRAGMA table_info({table})")}
        found = await self.rows(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ?",
            table,
        )
        return {str(row[0]) for row in found}

    async def _connection(self) -> asyncpg.Connection:
        import asyncpg

        if self._conn is None:
            self._conn = await asyncpg.connect(self.url)
        return self._conn

    async def close(self) -> None:
        for store in self._stores:
            await store.close()
        if self._conn is not None:
            await self._conn.close()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new database of the test's own: a file, or a schema of CORELOGIN_TEST_PG_DSN (the
    fixture pg_url, asked for here only, so that only PostgreSQL's tests are skipped without
    it)."""
    if request.param == "sqlite":
        return str(tmp_path / "store.sqlite3")
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    opened = Database(database_url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def store(database: Database) -> Store:
    """A store, open, on the test's own database (closed by ``database``)."""
    return await database.open_another()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """Where a SQLite-only test keeps its database file."""
    return tmp_path / "store.sqlite3"


def database_at_version(path: Path, version: int, *rows: str) -> None:
    """A SQLite database made by the first ``version`` migrations only (as an older corelogin
    left it), holding ``rows`` (INSERT statements)."""
    db = sqlite3.connect(path)
    try:
        db.create_function("corelogin_email_key", 1, email_key, deterministic=True)
        for number, script in enumerate(MIGRATIONS[:version], start=1):
            db.executescript(script)
            db.execute(f"PRAGMA user_version = {number}")
        for row in rows:
            db.execute(row)
        db.commit()
        assert db.execute("PRAGMA user_version").fetchone() == (version,)
    finally:
        db.close()


def sqlite_rows(path: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` as a separate, read-only connection to a SQLite file sees them."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return list(db.execute(sql, args).fetchall())
    finally:
        db.close()


def record(
    user_id: str,
    username: str,
    email: str | None = None,
    *,
    scope: str = "s",
    password_hash: str = "$argon2id$old",  # noqa: S107 (not a real hash)
    active: bool = True,
    confirmation: str | None = None,
    extra: dict[str, Any] | None = None,
    group: str | None = None,
    created: int = 1,
) -> UserRecord:
    """A user record as the tests store it (plain text where the server would hash)."""
    return UserRecord(
        user_id=user_id,
        scope=scope,
        username=username,
        email=email,
        password_hash=password_hash,
        active=active,
        confirmation=confirmation,
        group=group,
        extra=extra,
        created=created,
    )


async def log_in(store: Store, user_id: str, at: float, limit: SessionLimit | None = None) -> None:
    """A session of ``user_id`` opened at ``at``, with its login event."""
    opened = SessionRecord(f"{user_id}-{at}", user_id, at, at + 3600)
    await store.open_session(opened, LoginEvent(user_id, at, None, None), limit=limit)


# The first failed login locks its identifier, for 600 seconds.
LOCK_AT_ONCE = LockoutRule(threshold=1, window=60, seconds=600)


async def lock(store: Store, identifier: str, at: float, scope: str = "s") -> None:
    """Lock ``identifier`` of ``scope`` from ``at`` for 600 seconds (`LOCK_AT_ONCE`)."""
    failure = FailedLogin(scope, identifier, at, None, None, "wrong password")
    assert await store.record_failure(failure, LOCK_AT_ONCE) is False  # the failure that locks
