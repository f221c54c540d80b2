"""The admin page's store (issue 12), on each backend: operators and their sessions (which end
with a new password and with the operator), the audit log (which outlives the operator), a
user's sessions, the day's figures; and the upgrade of a database of the schema before
(SQLite 5, PostgreSQL 1): last_login filled from its login events. The pages of users:
test_admin_users.py."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from corelogin.server.store import SessionRecord, Store
from corelogin.server.store.admin_base import (
    AdminSession,
    AuditEntry,
    DayCount,
    DuplicateOperatorError,
    Operator,
    UserQuery,
)
from corelogin.server.store.base import FailedLogin
from corelogin.server.store.postgres_schema import MIGRATIONS as POSTGRES_MIGRATIONS
from corelogin.server.store.sqlite import SQLiteStore
from corelogin.server.store.sqlite_schema import MIGRATIONS
from tests.store.conftest import (
    Database,
    database_at_version,
    lock,
    log_in,
    record,
    sqlite_rows,
)

NOW = 1_700_000_000.0
DAY = 1_704_067_200  # 2024-01-01T00:00:00Z


def operator(name: str = "ada", password_hash: str = "$argon2id$ada") -> Operator:  # noqa: S107
    return Operator(name=name, password_hash=password_hash, created=NOW)


def admin_session(
    token_hash: str, name: str = "ada", *, expires: float = NOW + 3600
) -> AdminSession:
    return AdminSession(token_hash, name, created=NOW, expires=expires, last_seen=NOW)


# -- operators and their sessions -----------------------------------------------------------


async def test_an_operator_is_read_back_and_its_name_cannot_be_added_twice(store: Store) -> None:
    await store.add_operator(operator())
    with pytest.raises(DuplicateOperatorError):
        await store.add_operator(operator(password_hash="$argon2id$other"))

    assert await store.get_operator("ada") == operator()  # the first one, unchanged
    assert await store.get_operator("bob") is None


async def test_a_new_operator_password_ends_that_operators_sessions_only(store: Store) -> None:
    await store.add_operator(operator())
    await store.add_operator(operator("bob"))
    for token_hash, name in (("a1", "ada"), ("a2", "ada"), ("b1", "bob")):
        await store.open_admin_session(admin_session(token_hash, name))

    assert await store.set_operator_password("ada", "$argon2id$new") is True

    changed = await store.get_operator("ada")
    assert changed is not None
    assert changed.password_hash == "$argon2id$new"
    assert [await store.admin_session(h) for h in ("a1", "a2")] == [None, None]
    assert await store.admin_session("b1") == admin_session("b1", "bob")
    assert await store.set_operator_password("nobody", "$argon2id$x") is False


async def test_a_removed_operator_takes_its_sessions_and_the_audit_log_keeps_its_name(
    store: Store, database: Database
) -> None:
    await store.add_operator(operator())
    await store.open_admin_session(admin_session("a1"))
    entry = AuditEntry(at=NOW, operator="ada", action="user.delete", scope="s", target="u1")
    await store.record_audit(entry)

    assert await store.remove_operator("ada") is True

    assert await store.get_operator("ada") is None
    assert await store.admin_session("a1") is None
    assert await database.rows("SELECT count(*) FROM admin_sessions") == [(0,)]
    assert await store.audit_log() == [entry]
    assert await store.remove_operator("ada") is False


async def test_an_admin_session_is_read_whatever_its_age_touched_and_ended(store: Store) -> None:
    await store.add_operator(operator())
    expired = admin_session("a1", expires=NOW - 1)
    await store.open_admin_session(expired)
    assert await store.admin_session("a1") == expired  # the caller decides what age is too old

    await store.touch_admin_session("a1", NOW + 60)
    touched = await store.admin_session("a1")
    assert touched == attrs.evolve(expired, last_seen=NOW + 60)

    await store.end_admin_session("a1")
    assert await store.admin_session("a1") is None
    await store.end_admin_session("a1")  # ending it again is harmless
    assert await store.admin_session("unknown") is None


async def test_an_admin_session_of_no_operator_is_refused(store: Store) -> None:
    with pytest.raises(LookupError):
        await store.open_admin_session(admin_session("a1", "nobody"))
    assert await store.admin_session("a1") is None


async def test_an_admin_session_is_seen_by_another_instance_at_once(
    store: Store, database: Database
) -> None:
    other = await database.open_another()
    await store.add_operator(operator())
    await store.open_admin_session(admin_session("a1"))
    assert await other.admin_session("a1") == admin_session("a1")
    await other.end_admin_session("a1")
    assert await store.admin_session("a1") is None


# -- the audit log ---------------------------------------------------------------------------

ENTRIES = [
    AuditEntry(NOW, "ada", "user.update", "s", "u1", '{"group": "vip"}'),
    AuditEntry(NOW + 1, "ada", "user.delete", "s", "u2"),
    AuditEntry(NOW + 2, "bob", "operator.add", detail="carl"),
    AuditEntry(NOW + 3, "ada", "user.update", "t", "u3"),
    AuditEntry(NOW + 4, "bob", "user.unlock", "s", "u1"),
]


async def test_the_audit_log_is_newest_first_of_a_scope_or_of_a_user(store: Store) -> None:
    for entry in ENTRIES:
        await store.record_audit(entry)
    e1, e2, e3, e4, e5 = ENTRIES

    assert await store.audit_log() == [e5, e4, e3, e2, e1]
    assert await store.audit_log(limit=2) == [e5, e4]
    assert await store.audit_log(scope="s") == [e5, e2, e1]
    assert await store.audit_log(target="u1") == [e5, e1]
    assert await store.audit_log(scope="s", target="u1", limit=1) == [e5]
    assert await store.audit_log(scope="t", target="u1") == []


# -- a user's sessions --------------------------------------------------------------------


async def test_a_users_sessions_are_listed_newest_first_expired_ones_included(
    store: Store,
) -> None:
    await store.create_user(record("u1", "Donna"))
    await store.create_user(record("u2", "Tina"))
    for token_hash, user_id, created in (
        ("h1", "u1", 10.0),
        ("h2", "u1", 30.0),
        ("h3", "u1", 20.0),
        ("x", "u2", 40.0),
    ):
        await store.open_session(SessionRecord(token_hash, user_id, created, created + 1), None)

    sessions = await store.user_sessions("u1")

    assert [(s.token_hash, s.created, s.expires) for s in sessions] == [
        ("h2", 30.0, 31.0),
        ("h3", 20.0, 21.0),
        ("h1", 10.0, 11.0),
    ]
    assert await store.user_sessions("nobody") == []


# -- the day's figures -----------------------------------------------------------------------


async def test_joins_and_logins_are_counted_per_utc_day_days_without_any_left_out(
    store: Store,
) -> None:
    for user_id, created in (
        ("u0", DAY - 10_000),
        ("u1", DAY - 1),
        ("u2", DAY),
        ("u3", DAY + 86_405),
    ):
        await store.create_user(record(user_id, f"User-{user_id}", created=created))
    await store.create_user(record("t1", "Other", scope="t", created=DAY))
    for at in (DAY - 10_000, DAY - 0.5, DAY + 1, DAY + 86_399.5, DAY + 2 * 86_400):
        await log_in(store, "u1", at)
    await log_in(store, "t1", DAY + 2)

    joins = await store.joins_per_day("s", since=DAY - 7200)
    logins = await store.logins_per_day("s", since=DAY - 7200)

    assert joins == [
        DayCount("2023-12-31", 1),
        DayCount("2024-01-01", 1),
        DayCount("2024-01-02", 1),
    ]
    assert logins == [
        DayCount("2023-12-31", 1),
        DayCount("2024-01-01", 2),
        DayCount("2024-01-03", 1),
    ]
    assert await store.joins_per_day("t", since=0) == [DayCount("2024-01-01", 1)]
    assert await store.logins_per_day("s", since=DAY + 3 * 86_400) == []


async def test_pending_count_counts_a_scopes_users_awaiting_confirmation(store: Store) -> None:
    await store.create_user(record("u1", "Donna", active=False, confirmation="pending"))
    await store.create_user(record("u2", "Tina", active=False, confirmation="failed"))
    await store.create_user(record("u3", "Pam"))
    await store.create_user(record("t1", "Lou", scope="t", active=False, confirmation="pending"))

    assert await store.pending_count("s") == 2
    assert await store.pending_count("t") == 1
    assert await store.pending_count("none") == 0


async def test_locked_identifiers_are_those_locked_now(store: Store) -> None:
    await lock(store, "donna", NOW - 10)
    await lock(store, "@tina@x.com", NOW - 20)
    await lock(store, "old", NOW - 1000)  # ended
    await lock(store, "lifted", NOW - 10)
    assert await store.clear_failures("s", "lifted")
    await lock(store, "eve", NOW - 10, scope="t")

    assert await store.locked_identifiers("s", NOW) == [
        ("@tina@x.com", NOW + 580),
        ("donna", NOW + 590),
    ]
    assert await store.locked_identifiers("s", NOW + 585) == [("donna", NOW + 590)]


async def test_failed_count_counts_a_scopes_failed_logins_from_a_time(store: Store) -> None:
    for at, scope in ((NOW - 100, "s"), (NOW, "s"), (NOW + 1, "s"), (NOW, "t")):
        await store.record_failure(FailedLogin(scope, "donna", at, None, None, "unknown user"))

    assert await store.failed_count("s", NOW) == 2
    assert await store.failed_count("s", NOW - 100) == 3
    assert await store.failed_count("t", 0) == 1
    assert await store.failed_count("s", NOW + 2) == 0


# -- the upgrade of a database of the schema before: last_login from the login events -------


async def test_a_schema_5_database_gets_last_login_from_its_login_events(path: Path) -> None:
    database_at_version(
        path,
        5,
        "INSERT INTO users (user_id, scope, username, username_key, password_hash, active, "
        "created) VALUES ('u1', 's', 'Donna', 'donna', 'h', 1, 1), "
        "('u2', 's', 'Tina', 'tina', 'h', 1, 1)",
        "INSERT INTO login_events (user_id, at) VALUES ('u1', 10.0), ('u1', 30.0), ('u1', 20.0)",
    )

    store = SQLiteStore(str(path))
    await store.open()
    try:
        page = await store.list_users(UserQuery(scope="s", order="last_login"))
        assert [(s.user.username, s.last_login) for s in page.users] == [
            ("Donna", 30.0),
            ("Tina", None),
        ]
        await store.add_operator(operator())  # the new tables are there
        assert await store.get_operator("ada") == operator()
    finally:
        await store.close()

    assert len(MIGRATIONS) >= 6
    assert sqlite_rows(path, "PRAGMA user_version") == [(len(MIGRATIONS),)]


async def test_a_postgresql_schema_1_database_gets_last_login_from_its_login_events(
    pg_url: str,
) -> None:
    import asyncpg

    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(POSTGRES_MIGRATIONS[0])
        await conn.execute(
            "CREATE TABLE corelogin_schema (version INTEGER NOT NULL); "
            "INSERT INTO corelogin_schema (version) VALUES (1); "
            "INSERT INTO users (user_id, scope, username, username_key, password_hash, active, "
            "created) VALUES ('u1', 's', 'Donna', 'donna', 'h', true, 1), "
            "('u2', 's', 'Tina', 'tina', 'h', true, 1); "
            "INSERT INTO login_events (user_id, at) VALUES ('u1', 10), ('u1', 30), ('u1', 20)"
        )
    finally:
        await conn.close()

    database = Database(pg_url)
    try:
        store = await database.open_another()
        page = await store.list_users(UserQuery(scope="s", order="last_login"))
        assert [(s.user.username, s.last_login) for s in page.users] == [
            ("Donna", 30.0),
            ("Tina", None),
        ]
        await store.add_operator(operator())  # the new tables are there
        assert await database.rows("SELECT max(version) FROM corelogin_schema") == [
            (len(POSTGRES_MIGRATIONS),)
        ]
    finally:
        await database.close()
