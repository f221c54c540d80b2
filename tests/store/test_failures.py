"""The store's failed logins and lockouts, called directly on each backend: the record (never
a password), the count within the window, the lock at exactly the threshold and its end,
clearing (with and without a lock in force), and one decision per concurrent failure, also
between two stores on one database; and, SQLite only, the upgrade of a schema 4 database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from corelogin.server.store import Store, UserRecord
from corelogin.server.store.base import FailedLogin, FailureReason, LockoutRule
from corelogin.server.store.sqlite import SQLiteStore
from corelogin.server.store.sqlite_schema import MIGRATIONS
from tests.store.conftest import Database, database_at_version, sqlite_rows

NOW = 1_000_000.0
RULE = LockoutRule(threshold=3, window=60, seconds=300)


def failure(
    at: float = NOW,
    identifier: str = "donna",
    *,
    scope: str = "s",
    reason: FailureReason = "wrong password",
) -> FailedLogin:
    return FailedLogin(
        scope=scope,
        identifier=identifier,
        at=at,
        remote="192.0.2.7",
        user_agent="game/1.0",
        reason=reason,
    )


async def test_a_failure_is_kept_with_address_agent_and_reason(
    store: Store, database: Database
) -> None:
    assert await store.record_failure(failure(NOW, reason="unknown user")) is False
    await store.record_failure(failure(NOW + 1, "@d@x"))

    assert await store.failed_logins("s") == [
        failure(NOW + 1, "@d@x"),
        failure(NOW, reason="unknown user"),
    ]
    assert await store.failed_logins("s", "donna") == [failure(NOW, reason="unknown user")]
    assert await store.failed_logins("other") == []
    assert await database.rows(
        "SELECT scope, identifier, remote, user_agent, reason FROM failed_logins ORDER BY id"
    ) == [
        ("s", "donna", "192.0.2.7", "game/1.0", "unknown user"),
        ("s", "@d@x", "192.0.2.7", "game/1.0", "wrong password"),
    ]


async def test_failures_since_counts_one_identifier_of_one_scope_from_a_time(
    store: Store,
) -> None:
    for at in (NOW, NOW + 10, NOW + 20):
        await store.record_failure(failure(at))
    await store.record_failure(failure(NOW + 20, "tina"))
    await store.record_failure(failure(NOW + 20, scope="other"))

    assert await store.failures_since("s", "donna", NOW) == 3
    assert await store.failures_since("s", "donna", NOW + 10) == 2
    assert await store.failures_since("s", "donna", NOW + 21) == 0
    assert await store.failures_since("s", "tina", 0) == 1
    assert await store.failures_since("other", "donna", 0) == 1
    assert await store.failures_since("s", "nobody", 0) == 0


async def test_the_threshold_th_failure_locks_and_later_ones_are_refused(
    store: Store,
) -> None:
    decisions = [await store.record_failure(failure(NOW + i), RULE) for i in range(3)]
    assert decisions == [False, False, False]  # the failures themselves: 603
    assert await store.locked_until("s", "donna", NOW + 2) == NOW + 2 + RULE.seconds

    assert await store.record_failure(failure(NOW + 3), RULE) is True  # 606
    assert (await store.failed_logins("s", "donna", limit=1))[0].reason == "locked"
    # The lock does not grow with the attempts made while it holds.
    assert await store.locked_until("s", "donna", NOW + 3) == NOW + 2 + RULE.seconds
    # Other identifiers are not locked.
    assert await store.record_failure(failure(NOW + 3, "tina"), RULE) is False
    assert await store.record_failure(failure(NOW + 3, scope="other"), RULE) is False


async def test_failures_older_than_the_window_do_not_count(store: Store) -> None:
    await store.record_failure(failure(NOW), RULE)
    await store.record_failure(failure(NOW + 1), RULE)
    # The first is out of the window by now: this makes two, not three.
    assert await store.record_failure(failure(NOW + RULE.window + 0.5), RULE) is False
    assert await store.locked_until("s", "donna", NOW + RULE.window + 0.5) is None
    assert await store.record_failure(failure(NOW + RULE.window + 0.6), RULE) is False
    assert await store.locked_until("s", "donna", NOW + RULE.window + 0.6) is not None


async def test_after_the_lock_the_count_starts_again_from_zero(store: Store) -> None:
    for i in range(3):
        await store.record_failure(failure(NOW + i), RULE)
    end = NOW + 2 + RULE.seconds
    assert await store.locked_until("s", "donna", end - 0.1) == end
    assert await store.locked_until("s", "donna", end) is None

    long_window = LockoutRule(threshold=3, window=10 * RULE.seconds, seconds=RULE.seconds)
    # Still inside a long window, but the failures before the lock no longer count.
    assert await store.record_failure(failure(end + 1), long_window) is False
    assert await store.failures_since("s", "donna", 0) == 1
    assert await store.locked_until("s", "donna", end + 1) is None


async def test_clearing_resets_the_count_and_lifts_the_lock_keeping_the_record(
    store: Store,
) -> None:
    await store.record_failure(failure(NOW), RULE)
    await store.record_failure(failure(NOW + 1), RULE)
    assert await store.clear_failures("s", "donna") is True
    assert await store.failures_since("s", "donna", 0) == 0
    # Two more do not lock: the count restarted.
    await store.record_failure(failure(NOW + 2), RULE)
    assert await store.record_failure(failure(NOW + 3), RULE) is False
    assert await store.locked_until("s", "donna", NOW + 3) is None
    await store.record_failure(failure(NOW + 4), RULE)
    assert await store.locked_until("s", "donna", NOW + 4) is not None

    assert await store.clear_failures("s", "donna") is True  # the administrator's unlock
    assert await store.locked_until("s", "donna", NOW + 5) is None
    assert await store.record_failure(failure(NOW + 5), RULE) is False
    assert len(await store.failed_logins("s", "donna")) == 6  # history is kept


async def test_clearing_unless_locked_changes_nothing_while_locked(store: Store) -> None:
    for i in range(3):
        await store.record_failure(failure(NOW + i), RULE)

    assert await store.clear_failures("s", "donna", unless_locked_at=NOW + 3) is False
    assert await store.locked_until("s", "donna", NOW + 3) == NOW + 2 + RULE.seconds
    # Once the lock is over, it clears.
    after = NOW + 2 + RULE.seconds
    assert await store.clear_failures("s", "donna", unless_locked_at=after) is True
    assert await store.locked_until("s", "donna", after) is None
    # An identifier never seen: nothing to clear, nothing written.
    assert await store.clear_failures("s", "nobody", unless_locked_at=NOW) is True
    assert await store.failures_since("s", "nobody", 0) == 0


async def test_concurrent_failures_lock_at_exactly_the_threshold(
    store: Store, database: Database
) -> None:
    rule = LockoutRule(threshold=5, window=60, seconds=300)
    decisions = await asyncio.gather(
        *(store.record_failure(failure(NOW + i / 1000), rule) for i in range(20))
    )
    assert decisions.count(False) == 5
    assert decisions.count(True) == 15
    assert await database.rows(
        "SELECT reason, count(*) FROM failed_logins GROUP BY reason ORDER BY 1"
    ) == [
        ("locked", 15),
        ("wrong password", 5),
    ]


async def test_two_stores_on_one_database_count_each_others_failures(
    store: Store, database: Database
) -> None:
    """As two server instances do: each decision is a write transaction of the database."""
    rule = LockoutRule(threshold=5, window=60, seconds=300)
    other = await database.open_another()
    decisions = await asyncio.gather(
        *((store, other)[i % 2].record_failure(failure(NOW + i / 1000), rule) for i in range(20))
    )
    assert await other.locked_until("s", "donna", NOW + 1) is not None

    assert decisions.count(False) == 5
    assert await database.rows("SELECT count(*) FROM failed_logins WHERE reason = 'locked'") == [
        (15,)
    ]


async def test_a_lower_threshold_locks_an_identifier_already_past_it(store: Store) -> None:
    for i in range(4):
        await store.record_failure(failure(NOW + i))  # counted, with no rule yet

    assert await store.record_failure(failure(NOW + 4), RULE) is True
    assert await store.locked_until("s", "donna", NOW + 4) == NOW + 4 + RULE.seconds


async def test_failed_logins_has_no_password_column(store: Store, database: Database) -> None:
    assert await database.columns("failed_logins") == {
        "id",
        "scope",
        "identifier",
        "at",
        "remote",
        "user_agent",
        "reason",
    }


@pytest.mark.parametrize("limit", [1, 2])
async def test_failed_logins_gives_the_newest_first_up_to_the_limit(
    store: Store, limit: int
) -> None:
    for i in range(3):
        await store.record_failure(failure(NOW + i))
    newest = await store.failed_logins("s", limit=limit)
    assert [f.at for f in newest] == [NOW + 2, NOW + 1][:limit]


# -- SQLite only: the upgrade of a database of an older schema ----------------------------


async def test_a_schema_4_database_is_upgraded_to_5_with_its_users_kept(path: Path) -> None:
    database_at_version(
        path,
        4,
        "INSERT INTO users (user_id, scope, username, username_key, email, email_key, "
        "password_hash, active, confirmation, user_group, extra, created) "
        "VALUES ('u1', 's', 'Donna', 'donna', NULL, NULL, '', 1, NULL, NULL, NULL, 1)",
    )

    store = SQLiteStore(str(path))
    await store.open()
    try:
        user = await store.get_user("s", "u1")
        assert isinstance(user, UserRecord)
        assert user.username == "Donna"
        for i in range(3):
            await store.record_failure(failure(NOW + i), RULE)
        assert await store.record_failure(failure(NOW + 3), RULE) is True
    finally:
        await store.close()

    assert len(MIGRATIONS) >= 5
    assert sqlite_rows(path, "PRAGMA user_version") == [(len(MIGRATIONS),)]
    assert sqlite_rows(path, "SELECT count(*) FROM failed_logins") == [(4,)]
    assert sqlite_rows(path, "SELECT scope, identifier FROM lockouts") == [("s", "donna")]
