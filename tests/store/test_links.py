"""The store's provider links, called directly on each backend: add / get / update / remove /
find, the sign-up of a user linked to an identity in one transaction (and its races, also
between two stores on one database), the cascade of a deleted user, links kept when the
database is opened again; and, SQLite only, the upgrade of a schema 3 database."""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path

import pytest

from corelogin.server.store import (
    DuplicateLinkError,
    DuplicateUserError,
    ProviderLink,
    Store,
    UserRecord,
)
from corelogin.server.store.sqlite import SQLiteStore
from corelogin.server.store.sqlite_schema import MIGRATIONS
from tests.store.conftest import Database, database_at_version, record, sqlite_rows

NOW = 1_000_000.0


# A user the provider signed up: no password.
record = partial(record, password_hash="")


def link(
    user_id: str,
    client_id: str = "fb-1",
    *,
    provider: str = "facebook",
    scope: str = "s",
    access_token: str | None = "at-1",  # noqa: S107 (a made-up token)
    expiry: int | None = None,
) -> ProviderLink:
    return ProviderLink(
        user_id=user_id,
        scope=scope,
        provider=provider,
        client_id=client_id,
        access_token=access_token,
        access_token_expiry=expiry,
        created=NOW,
    )


@pytest.fixture
async def users(store: Store) -> None:
    """u1 Donna and u2 Tina in scope s, u3 Ann in scope other."""
    await store.create_user(record("u1", "Donna"))
    await store.create_user(record("u2", "Tina"))
    await store.create_user(record("u3", "Ann", scope="other"))


async def all_links(database: Database) -> list[tuple[object, ...]]:
    """The links a separate connection sees."""
    return await database.rows(
        "SELECT user_id, scope, provider, client_id, access_token, access_token_expiry "
        "FROM provider_links ORDER BY user_id, provider",
    )


async def user_ids(database: Database) -> list[str]:
    """The users a separate connection sees."""
    return [str(row[0]) for row in await database.rows("SELECT user_id FROM users ORDER BY 1")]


# -- add_link / get_link ---------------------------------------------------------------------


@pytest.mark.usefixtures("users")
async def test_added_link_is_read_back_whole(store: Store) -> None:
    added = link("u1", "fb-1", access_token="at-1", expiry=1_893_456_000)

    await store.add_link(added)

    assert await store.get_link("u1", "facebook") == added
    assert await store.get_link("u1", "google") is None
    assert await store.get_link("u2", "facebook") is None


@pytest.mark.usefixtures("users")
async def test_link_without_token_or_expiry_keeps_them_none(store: Store) -> None:
    await store.add_link(link("u1", access_token=None, expiry=None))

    got = await store.get_link("u1", "facebook")

    assert got is not None
    assert (got.access_token, got.access_token_expiry) == (None, None)


@pytest.mark.usefixtures("users")
async def test_second_link_of_one_provider_for_a_user_is_a_duplicate_and_changes_nothing(
    store: Store, database: Database
) -> None:
    await store.add_link(link("u1", "fb-1", access_token="at-1"))

    with pytest.raises(DuplicateLinkError):
        await store.add_link(link("u1", "fb-2", access_token="at-2"))

    assert await all_links(database) == [("u1", "s", "facebook", "fb-1", "at-1", None)]


@pytest.mark.usefixtures("users")
async def test_identity_linked_to_another_user_of_the_scope_is_a_duplicate(
    store: Store, database: Database
) -> None:
    await store.add_link(link("u1", "fb-1"))

    with pytest.raises(DuplicateLinkError):
        await store.add_link(link("u2", "fb-1", access_token="at-2"))

    assert await store.get_link("u2", "facebook") is None
    assert await all_links(database) == [("u1", "s", "facebook", "fb-1", "at-1", None)]


@pytest.mark.usefixtures("users")
async def test_one_identity_may_be_linked_once_per_scope_and_per_provider(
    store: Store,
) -> None:
    await store.add_link(link("u1", "id-1"))
    await store.add_link(link("u3", "id-1", scope="other"))
    await store.add_link(link("u2", "id-1", provider="google"))

    first = await store.find_link("s", "facebook", "id-1")
    second = await store.find_link("other", "facebook", "id-1")
    third = await store.find_link("s", "google", "id-1")
    assert first is not None
    assert second is not None
    assert third is not None
    assert (first[0].user_id, second[0].user_id, third[0].user_id) == ("u1", "u3", "u2")


async def test_a_link_of_a_user_that_does_not_exist_is_a_lookup_error(
    store: Store, database: Database
) -> None:
    with pytest.raises(LookupError):
        await store.add_link(link("nobody"))

    assert await all_links(database) == []


# -- update_link -----------------------------------------------------------------------------


@pytest.mark.usefixtures("users")
@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"access_token": "at-new"}, ("fb-1", "at-new", 100)),
        ({"access_token_expiry": 2_000_000_000}, ("fb-1", "at-1", 2_000_000_000)),
        ({"access_token_expiry": None}, ("fb-1", "at-1", None)),
        ({"client_id": "fb-9"}, ("fb-9", "at-1", 100)),
        ({"client_id": "fb-9", "access_token": "at-9"}, ("fb-9", "at-9", 100)),
        ({}, ("fb-1", "at-1", 100)),
    ],
)
async def test_update_link_changes_what_it_is_given_and_keeps_the_rest(
    store: Store, database: Database, changes: dict[str, object], expected: tuple[object, ...]
) -> None:
    await store.add_link(link("u1", "fb-1", access_token="at-1", expiry=100))

    updated = await store.update_link("u1", "facebook", **changes)

    assert updated is not None
    assert (updated.client_id, updated.access_token, updated.access_token_expiry) == expected
    assert await store.get_link("u1", "facebook") == updated
    assert await all_links(database) == [("u1", "s", "facebook", *expected)]


@pytest.mark.usefixtures("users")
async def test_update_link_of_a_provider_not_linked_is_none(store: Store) -> None:
    await store.add_link(link("u1"))

    assert await store.update_link("u1", "google", access_token="x") is None
    assert await store.update_link("nobody", "facebook", access_token="x") is None
    assert await store.get_link("u1", "google") is None


@pytest.mark.usefixtures("users")
async def test_update_link_to_another_users_identity_is_a_duplicate_and_changes_nothing(
    store: Store, database: Database
) -> None:
    await store.add_link(link("u1", "fb-1", access_token="at-1"))
    await store.add_link(link("u2", "fb-2", access_token="at-2"))
    before = await all_links(database)

    with pytest.raises(DuplicateLinkError):
        await store.update_link("u2", "facebook", client_id="fb-1", access_token="stolen")

    assert await all_links(database) == before
    # The store still works after the rolled back transaction.
    assert await store.update_link("u2", "facebook", access_token="at-3") is not None


@pytest.mark.usefixtures("users")
async def test_update_link_to_an_identity_of_another_scope_is_fine(store: Store) -> None:
    await store.add_link(link("u3", "fb-1", scope="other"))
    await store.add_link(link("u1", "fb-2"))

    updated = await store.update_link("u1", "facebook", client_id="fb-1")

    assert updated is not None
    assert updated.client_id == "fb-1"


# -- remove_link -----------------------------------------------------------------------------


@pytest.mark.usefixtures("users")
async def test_remove_link_removes_only_that_link(store: Store, database: Database) -> None:
    await store.add_link(link("u1", "fb-1"))
    await store.add_link(link("u1", "g-1", provider="google"))
    await store.add_link(link("u2", "fb-2"))

    assert await store.remove_link("u1", "facebook") is True
    assert await store.remove_link("u1", "facebook") is False
    assert await store.remove_link("u3", "facebook") is False

    assert await store.get_link("u1", "facebook") is None
    assert await store.find_link("s", "facebook", "fb-1") is None
    assert [(row[0], row[2]) for row in await all_links(database)] == [
        ("u1", "google"),
        ("u2", "facebook"),
    ]


@pytest.mark.usefixtures("users")
async def test_a_removed_identity_can_be_linked_by_another_user(store: Store) -> None:
    await store.add_link(link("u1", "fb-1"))
    await store.remove_link("u1", "facebook")

    await store.add_link(link("u2", "fb-1"))

    found = await store.find_link("s", "facebook", "fb-1")
    assert found is not None
    assert found[0].user_id == "u2"


# -- find_link -------------------------------------------------------------------------------


@pytest.mark.usefixtures("users")
async def test_find_link_gives_the_user_and_the_link(store: Store) -> None:
    added = link("u2", "fb-2", access_token="at-2", expiry=5)
    await store.add_link(added)

    found = await store.find_link("s", "facebook", "fb-2")

    assert found == (record("u2", "Tina"), added)


@pytest.mark.usefixtures("users")
async def test_find_link_is_bound_to_its_scope_provider_and_identity(store: Store) -> None:
    await store.add_link(link("u1", "fb-1"))

    assert await store.find_link("other", "facebook", "fb-1") is None
    assert await store.find_link("s", "google", "fb-1") is None
    assert await store.find_link("s", "facebook", "FB-1") is None
    assert await store.find_link("s", "facebook", "fb-") is None
    assert await store.find_link("s", "facebook", "fb-1") is not None


# -- delete_user -----------------------------------------------------------------------------


@pytest.mark.usefixtures("users")
async def test_deleting_a_user_deletes_its_links_and_frees_the_identity(
    store: Store, database: Database
) -> None:
    await store.add_link(link("u1", "fb-1"))
    await store.add_link(link("u1", "g-1", provider="google"))
    await store.add_link(link("u2", "fb-2"))

    assert await store.delete_user("s", "u1") is True

    assert [row[0] for row in await all_links(database)] == ["u2"]
    assert await store.find_link("s", "facebook", "fb-1") is None
    assert await store.get_link("u1", "google") is None
    await store.create_user(record("u4", "Newcomer"))
    await store.add_link(link("u4", "fb-1"))
    found = await store.find_link("s", "facebook", "fb-1")
    assert found is not None
    assert found[0].user_id == "u4"


@pytest.mark.usefixtures("users")
async def test_deleting_a_user_of_another_scope_keeps_its_links(
    store: Store, database: Database
) -> None:
    await store.add_link(link("u1", "fb-1"))

    assert await store.delete_user("other", "u1") is False

    assert len(await all_links(database)) == 1


# -- signup_with_link ------------------------------------------------------------------------


async def test_signup_with_link_creates_the_user_and_its_link_together(
    store: Store, database: Database
) -> None:
    user = record("n1", "device-user", email="n@x.com")
    new_link = link("n1", "device-abc", provider="openudid", access_token=None)

    result = await store.signup_with_link(user, new_link)

    assert result == (user, new_link)
    assert await store.get_user("s", "n1") == user
    assert await store.get_link("n1", "openudid") == new_link
    assert await store.find_link("s", "openudid", "device-abc") == (user, new_link)
    assert await user_ids(database) == ["n1"]


async def test_signup_with_link_of_a_linked_identity_gives_the_existing_user(
    store: Store, database: Database
) -> None:
    first = record("n1", "first")
    first_link = link("n1", "device-abc", provider="openudid", access_token=None)
    await store.signup_with_link(first, first_link)

    result = await store.signup_with_link(
        record("n2", "second"), link("n2", "device-abc", provider="openudid", access_token=None)
    )

    assert result == (first, first_link)
    assert await user_ids(database) == ["n1"]
    assert len(await all_links(database)) == 1


async def test_signup_with_link_of_an_identity_linked_in_another_scope_creates_a_user(
    store: Store, database: Database
) -> None:
    await store.signup_with_link(
        record("n1", "first", scope="a"), link("n1", "id-1", provider="google", scope="a")
    )

    user, _ = await store.signup_with_link(
        record("n2", "first", scope="b"), link("n2", "id-1", provider="google", scope="b")
    )

    assert user.user_id == "n2"
    assert await user_ids(database) == ["n1", "n2"]


async def test_concurrent_signups_of_one_identity_create_one_user(
    store: Store, database: Database
) -> None:
    """First logins of one device arriving at two servers at once (a store each)."""
    other = await database.open_another()
    attempts = [
        (store, other)[i % 2].signup_with_link(
            record(f"n{i:02}", f"device-{i:02}"),
            link(f"n{i:02}", "device-abc", provider="openudid", access_token=None),
        )
        for i in range(20)
    ]

    results = await asyncio.gather(*attempts)

    winners = {user.user_id for user, _ in results}
    assert len(winners) == 1
    assert {found_link.client_id for _, found_link in results} == {"device-abc"}
    assert await user_ids(database) == sorted(winners)
    assert len(await all_links(database)) == 1


@pytest.mark.parametrize(
    "colliding",
    [
        record("n1", "DONNA"),  # usernames compare without letter case
        record("n1", "someone-else", email="Donna@X.com"),  # and emails too
    ],
    ids=["username", "email"],
)
async def test_signup_with_a_taken_username_or_email_raises_and_creates_nothing(
    store: Store, database: Database, colliding: UserRecord
) -> None:
    await store.create_user(record("u1", "Donna", email="donna@x.com"))

    with pytest.raises(DuplicateUserError):
        await store.signup_with_link(colliding, link("n1", "g-1", provider="google"))

    assert await user_ids(database) == ["u1"]
    assert await all_links(database) == []
    assert await store.find_link("s", "google", "g-1") is None
    # Nothing is left half done: the same identity signs up under a free name.
    user, _ = await store.signup_with_link(
        record("n2", "free-name"), link("n2", "g-1", provider="google")
    )
    assert user.user_id == "n2"


# -- reopening -------------------------------------------------------------------------------


async def test_a_database_opened_again_keeps_its_links(store: Store, database: Database) -> None:
    await store.create_user(record("u1", "Donna"))
    await store.add_link(link("u1", "fb-1", expiry=7))
    await store.close()

    again = await database.open_another()

    assert await again.get_link("u1", "facebook") == link("u1", "fb-1", expiry=7)
    assert await again.find_link("s", "facebook", "fb-1") == (
        record("u1", "Donna"),
        link("u1", "fb-1", expiry=7),
    )


# -- SQLite only: the upgrade of a database of an older schema ------------------------------


async def test_a_schema_3_database_is_upgraded_to_4_with_its_users_kept(path: Path) -> None:
    database_at_version(
        path,
        3,
        "INSERT INTO users (user_id, scope, username, username_key, email, email_key, "
        "password_hash, active, confirmation, user_group, extra, created) "
        "VALUES ('u1', 's', 'Donna', 'donna', NULL, NULL, '', 1, NULL, NULL, NULL, 1)",
    )

    store = SQLiteStore(str(path))
    await store.open()
    try:
        assert await store.get_user("s", "u1") == record("u1", "Donna")
        await store.add_link(link("u1", "fb-1"))
        await store.create_user(record("u2", "Tina"))
        with pytest.raises(DuplicateLinkError):  # the identity index came with version 4
            await store.add_link(link("u2", "fb-1"))
        assert await store.delete_user("s", "u1") is True  # ... and the cascade
        assert await store.find_link("s", "facebook", "fb-1") is None
    finally:
        await store.close()

    assert sqlite_rows(path, "PRAGMA user_version") == [(len(MIGRATIONS),)]
    assert len(MIGRATIONS) >= 4
    assert sqlite_rows(path, "SELECT count(*) FROM provider_links") == [(0,)]
