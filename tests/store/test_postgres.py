"""The PostgreSQL store alone: its URLs, the schema made once and versioned in
``corelogin_schema`` (also by servers starting together, and refused when newer), one clear
line for a database it cannot use, and a database whose connections are cut: calls that fail
are `StoreUnavailable`, a transaction cut half way leaves nothing, and the pool heals itself.

What both backends share (two stores on one database included) is tested in the other
modules, on each backend."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from corelogin.server.store import (
    CodeRecord,
    LoginEvent,
    SessionRecord,
    Store,
    StoreError,
    StoreUnavailable,
    open_store,
)
from corelogin.server.store.base import FailedLogin
from corelogin.server.store.postgres import PostgresStore
from corelogin.server.store.postgres_schema import MIGRATIONS, TABLES
from tests.conftest import with_search_path
from tests.netfaults import free_port
from tests.store.conftest import Database, record

NOW = 1_000_000.0
PASSWORD = "hunter2-not-for-logs"  # made up, to be looked for in messages


@pytest.fixture
async def pg_database(pg_url: str) -> AsyncIterator[Database]:
    """A new, empty schema of the test's own, as `Database`."""
    opened = Database(pg_url)
    try:
        yield opened
    finally:
        await opened.close()


def with_credentials(dsn: str, *, password: str, database: str | None = None) -> str:
    """``dsn`` with a password (and another database name)."""
    parts = urlsplit(dsn)
    host = parts.hostname or "localhost"
    netloc = f"{parts.username or 'postgres'}:{password}@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    path = parts.path if database is None else f"/{database}"
    return urlunsplit((parts.scheme, netloc, path, parts.query, parts.fragment))


async def versions(database: Database) -> list[int]:
    return [
        int(row[0])
        for row in await database.rows("SELECT version FROM corelogin_schema ORDER BY 1")
    ]


async def tables(database: Database) -> set[str]:
    found = await database.rows(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    )
    return {str(row[0]) for row in found}


# -- URLs ----------------------------------------------------------------------------------


def test_postgresql_urls_select_the_postgres_store_with_its_pool_settings() -> None:
    for url in ("postgresql://user:secret@db.example/corelogin", "postgres://db.example/x"):
        store = open_store(url, pool_min=3, pool_max=7, timeout=2.5)
        assert isinstance(store, PostgresStore)
        assert (store.pool_min, store.pool_max, store.timeout) == (3, 7, 2.5)


# -- the schema ----------------------------------------------------------------------------


async def test_the_schema_is_made_once_and_versioned(pg_database: Database) -> None:
    store = await pg_database.open_another()
    assert await versions(pg_database) == list(range(1, len(MIGRATIONS) + 1))
    assert {*TABLES, "corelogin_schema"} <= await tables(pg_database)
    await store.create_user(record("u1", "Donna"))

    await store.close()
    await store.open()
    another = await pg_database.open_another()

    assert await versions(pg_database) == list(range(1, len(MIGRATIONS) + 1))
    assert await another.get_user("s", "u1") == record("u1", "Donna")


@pytest.mark.parametrize("round_", range(3))
async def test_servers_opening_one_new_schema_together_all_succeed_and_migrate_once(
    pg_url: str, pg_database: Database, round_: int
) -> None:
    stores = [open_store(pg_url, pool_min=1) for _ in range(4)]
    try:
        await asyncio.gather(*(store.open() for store in stores))
        await stores[0].create_user(record("u1", "Donna"))
        for store in stores[1:]:
            assert await store.user_exists("s", "donna", None)
    finally:
        for store in stores:
            await store.close()

    assert await versions(pg_database) == list(range(1, len(MIGRATIONS) + 1))


async def test_a_newer_schema_is_refused_in_one_line(pg_url: str, pg_database: Database) -> None:
    await pg_database.rows("CREATE TABLE corelogin_schema (version INTEGER NOT NULL)")
    await pg_database.rows("INSERT INTO corelogin_schema (version) VALUES (?)", len(MIGRATIONS) + 1)
    store = open_store(pg_url)

    with pytest.raises(StoreError) as caught:
        await store.open()

    assert type(caught.value) is StoreError  # not StoreUnavailable: trying again is no use
    message = str(caught.value)
    assert "newer" in message
    assert "upgrade corelogin" in message
    assert "\n" not in message
    assert await tables(pg_database) == {"corelogin_schema"}  # nothing migrated


# -- what every instance shares -------------------------------------------------------------


async def test_two_stores_count_the_hits_of_a_key_together(pg_database: Database) -> None:
    """Rate limits hold across instances: each hit at either one is counted once, in one
    window."""
    first, second = await pg_database.open_another(), await pg_database.open_another()

    answers = await asyncio.gather(
        *((first, second)[i % 2].count_hit("login:192.0.2.7", 60, NOW) for i in range(50))
    )

    assert sorted(hits for _, hits in answers) == list(range(1, 51))
    assert {start for start, _ in answers} == {NOW}
    assert await second.count_hit("login:192.0.2.7", 60, NOW + 60) == (NOW + 60, 1)


# -- a database that cannot be used ----------------------------------------------------------


async def test_an_unreachable_database_is_one_line_without_the_password() -> None:
    store = open_store(f"postgresql://postgres:{PASSWORD}@127.0.0.1:{free_port()}/test")

    with pytest.raises(StoreError) as caught:
        await store.open()

    message = str(caught.value)
    assert message.startswith("cannot use the PostgreSQL database 127.0.0.1/test: ")
    assert PASSWORD not in message
    assert "\n" not in message
    with pytest.raises(RuntimeError, match="not open"):  # no pool left behind
        await store.ping()


async def test_a_database_that_does_not_exist_is_one_line_without_the_password(
    pg_dsn: str,
) -> None:
    missing = f"corelogin_missing_{secrets.token_hex(4)}"
    store = open_store(with_credentials(pg_dsn, password=PASSWORD, database=missing))

    with pytest.raises(StoreError) as caught:
        await store.open()

    message = str(caught.value)
    assert missing in message
    assert "does not exist" in message
    assert PASSWORD not in message
    assert "\n" not in message


async def test_a_search_path_naming_no_schema_is_one_line(pg_dsn: str) -> None:
    store = open_store(with_search_path(pg_dsn, f"t_missing_{secrets.token_hex(4)}"))

    with pytest.raises(StoreError) as caught:
        await store.open()

    message = str(caught.value)
    assert "no schema has been selected" in message
    assert "\n" not in message


# -- connections cut -----------------------------------------------------------------------


@pytest.fixture
def app_name() -> str:
    """The application_name of a test's store, so that its connections, and only they, can be
    found in pg_stat_activity."""
    return f"corelogin-test-{secrets.token_hex(6)}"


@pytest.fixture
async def admin(pg_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the test's own to the schema (as an operator's psql)."""
    conn = await asyncpg.connect(pg_url)
    try:
        yield conn
    finally:
        await conn.close()


async def cut(admin: asyncpg.Connection, app_name: str) -> int:
    """Terminate every backend of ``app_name``; how many there were."""
    return int(
        await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1",
            app_name,
        )
    )


async def waiting_for_a_lock(admin: asyncpg.Connection, app_name: str, count: int) -> None:
    """Until ``count`` backends of ``app_name`` wait for a lock (5 s at most)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        waiting = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name = $1 AND wait_event_type = 'Lock'",
            app_name,
        )
        if waiting >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} calls of {app_name} never waited for a lock")


async def until_it_answers(call: Callable[[], Awaitable[object]], seconds: float = 5) -> object:
    """The result of ``call`` once it succeeds; meanwhile it may only be `StoreUnavailable`."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await call()
        except StoreUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


def failure(at: float) -> FailedLogin:
    return FailedLogin("s", "donna", at, None, None, "wrong password")


@pytest.fixture
async def cut_store(pg_url: str, app_name: str) -> AsyncIterator[Store]:
    """A store of four connections named ``app_name``, with the user u1 (Donna)."""
    store = open_store(f"{pg_url}&application_name={app_name}", pool_min=4, pool_max=4)
    await store.open()
    try:
        await store.create_user(record("u1", "Donna"))
        yield store
    finally:
        await store.close()


async def test_calls_on_connections_cut_while_idle_succeed_or_are_unavailable(
    cut_store: Store, admin: asyncpg.Connection, app_name: str
) -> None:
    for round_ in range(5):
        assert await cut(admin, app_name) >= 1

        results = await asyncio.gather(
            cut_store.get_user("s", "u1"),
            cut_store.ping(),
            cut_store.open_session(SessionRecord(f"h{round_}", "u1", NOW, NOW + 60), None),
            cut_store.record_failure(failure(NOW + round_)),
            cut_store.find_user("s", username="donna"),
            return_exceptions=True,
        )

        failed = [result for result in results if isinstance(result, BaseException)]
        assert all(isinstance(exc, StoreUnavailable) for exc in failed), failed
        assert all("\n" not in str(exc) for exc in failed)
        # Within a few seconds the store answers again, and what it said it did is done.
        assert await until_it_answers(lambda: cut_store.get_user("s", "u1")) == record(
            "u1", "Donna"
        )
        if not isinstance(results[2], BaseException):
            assert await cut_store.session(f"h{round_}") is not None


async def test_calls_cut_in_the_middle_are_unavailable_and_the_pool_heals(
    cut_store: Store, admin: asyncpg.Connection, app_name: str
) -> None:
    calls: list[Awaitable[object]] = [
        cut_store.create_user(record("u2", "Tina")),
        cut_store.open_session(
            SessionRecord("h1", "u1", NOW, NOW + 60), LoginEvent("u1", NOW, None, None)
        ),
        cut_store.record_failure(failure(NOW)),
        cut_store.find_user("s", username="donna"),
    ]
    async with admin.transaction():
        await admin.execute("LOCK TABLE users, sessions, login_events, failed_logins")
        running = asyncio.gather(*calls, return_exceptions=True)
        await waiting_for_a_lock(admin, app_name, len(calls))
        assert await cut(admin, app_name) == 4
        results = await running

    assert [type(result) for result in results] == [StoreUnavailable] * len(calls)
    # Nothing of the calls cut is left, and the store answers again, with fresh connections.
    assert await until_it_answers(lambda: cut_store.find_user("s", username="tina")) is None
    assert await cut_store.session("h1") is None
    assert await cut_store.login_events("u1") == []
    assert await cut_store.failed_logins("s") == []
    await cut_store.create_user(record("u2", "Tina"))
    assert await cut_store.get_user("s", "u2") == record("u2", "Tina")


async def open_session_with_login(store: Store) -> object:
    await store.open_session(
        SessionRecord("h1", "u1", NOW, NOW + 60), LoginEvent("u1", NOW, None, None)
    )
    return None


async def create_user_with_code(store: Store) -> object:
    await store.create_user(
        record("u2", "Tina", active=False, confirmation="pending"),
        CodeRecord("c2", "u2", "confirm", NOW, NOW + 60),
    )
    return None


async def use_reset_code(store: Store) -> object:
    return await store.use_code("r1", "reset", NOW + 1, password_hash="$argon2id$new")


@pytest.mark.parametrize(
    ("call", "tables_written"),
    [
        (open_session_with_login, ("sessions", "login_events", "users")),  # users.last_login
        (create_user_with_code, ("users", "codes")),
        (use_reset_code, ("codes", "users", "sessions")),
    ],
    ids=["open_session", "create_user", "use_code"],
)
async def test_a_transaction_cut_between_its_writes_leaves_nothing_written(
    cut_store: Store,
    admin: asyncpg.Connection,
    pg_database: Database,
    app_name: str,
    call: Callable[[Store], Awaitable[object]],
    tables_written: tuple[str, ...],
) -> None:
    """The call has written all but its last table when a lock on that one holds it; its
    connection is cut there: what it wrote is rolled back with the rest."""
    await cut_store.replace_code(CodeRecord("r1", "u1", "reset", NOW, NOW + 60))
    await cut_store.open_session(SessionRecord("old", "u1", NOW, NOW + 60), None)
    before = await contents(pg_database)

    async with admin.transaction():
        # Others may read the last table (and write the others), not write it.
        await admin.execute(f"LOCK TABLE {tables_written[-1]} IN SHARE MODE")
        running = asyncio.ensure_future(call(cut_store))
        await waiting_for_a_lock(admin, app_name, 1)
        assert await cut(admin, app_name) >= 1
        with pytest.raises(StoreUnavailable):
            await running

    assert await contents(pg_database) == before
    # The same call, on a healed pool, writes every table it writes.
    await until_it_answers(lambda: call(cut_store))
    after = await contents(pg_database)
    assert {table for table in TABLES if after[table] != before[table]} == set(tables_written)


async def contents(database: Database) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table of the store."""
    return {
        table: await database.rows(f"SELECT * FROM {table} ORDER BY 1")  # noqa: S608
        for table in TABLES
    }
