"""The store's users on each backend: uniqueness by key, per scope; data kept when the database
is opened again; and of fifty creates of one username at two stores on one database (two
server instances) at the same time, one wins."""

from __future__ import annotations

import asyncio
from functools import partial

import pytest

from corelogin.server.store import (
    DuplicateUserError,
    Store,
    UserRecord,
)
from tests.store.conftest import Database, record

record = partial(record, password_hash="$argon2id$fake", extra={"k": [1, "two"]})

FULLWIDTH = "\uff24\uff4f\uff4e\uff4e\uff41@home.com"  # "Donna@home.com" in fullwidth letters


async def test_reopening_keeps_data(store: Store) -> None:
    await store.create_user(record("u1", "Donna"))
    await store.ping()
    await store.close()
    with pytest.raises(RuntimeError, match="not open"):
        await store.ping()
    await store.open()
    found = await store.find_user("s", username="donna")
    assert found is not None
    assert found.extra == {"k": [1, "two"]}


@pytest.mark.parametrize(
    ("second"),
    [
        record("u2", "DONNA"),
        record("u2", "Other", "D@X.COM"),
        record("u2", "\uff44\uff4f\uff4e\uff4e\uff41"),
    ],
    ids=["username-case", "email-case", "fullwidth-username"],
)
async def test_username_and_email_are_unique_per_scope(store: Store, second: UserRecord) -> None:
    await store.create_user(record("u1", "Donna", "d@x.com"))
    with pytest.raises(DuplicateUserError):
        await store.create_user(second)
    await store.create_user(record("u3", second.username, second.email, scope="other"))


async def test_users_without_email_do_not_collide(store: Store) -> None:
    await store.create_user(record("u1", "A"))
    await store.create_user(record("u2", "B"))
    assert await store.find_user("s", username="b") is not None


async def test_emails_are_unique_regardless_of_unicode_width(store: Store) -> None:
    await store.create_user(record("u1", "Donna", "donna@home.com"))
    with pytest.raises(DuplicateUserError):
        await store.create_user(record("u2", "Other", FULLWIDTH))
    found = await store.find_user("s", email=FULLWIDTH)
    assert found is not None
    assert found.user_id == "u1"


# -- two stores on one database ------------------------------------------------------------


async def test_fifty_concurrent_creates_of_one_username_from_two_stores_make_one_user(
    store: Store, database: Database
) -> None:
    other = await database.open_another()

    async def create(i: int) -> bool:
        try:
            await (store, other)[i % 2].create_user(record(f"u{i}", "Donna" if i % 3 else "DONNA"))
        except DuplicateUserError:
            return False
        return True

    created = await asyncio.gather(*(create(i) for i in range(50)))

    assert created.count(True) == 1
    assert created.count(False) == 49
    winner = f"u{created.index(True)}"
    assert await database.rows("SELECT user_id FROM users") == [(winner,)]
    found = await other.find_user("s", username="donna")
    assert found is not None
    assert found.user_id == winner
