"""The store's account methods, called directly on each backend: users read by scope, updates
in one transaction (and the sessions they end), cascading deletes, the one-time codes of mailed
links (used once, also from two stores at a time) and sessions' last use; and, SQLite only,
the upgrade of a schema 2 database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

from corelogin.server.store import (
    CodeRecord,
    CodeState,
    DuplicateUserError,
    ExtraTooLarge,
    LoginEvent,
    SessionRecord,
    Store,
    UserChanges,
)
from corelogin.server.store.sqlite import SQLiteStore
from corelogin.server.store.sqlite_schema import MIGRATIONS
from corelogin.wire import EXTRA_MAX_BYTES
from tests.store.conftest import Database, database_at_version, record, sqlite_rows

NOW = 1_000_000.0
MAIL = {"from_email": "game@home.com", "subject": "Welcome", "email_tpl": None}


def code(
    code_hash: str,
    user_id: str = "u1",
    purpose: Any = "confirm",
    *,
    created: float = NOW,
    ttl: float = 3600,
    counted: bool = False,
    mail: dict[str, Any] | None = None,
) -> CodeRecord:
    return CodeRecord(
        code_hash=code_hash,
        user_id=user_id,
        purpose=purpose,
        created=created,
        expires=created + ttl,
        counted=counted,
        mail=mail,
    )


def session(token_hash: str, user_id: str = "u1", created: float = NOW) -> SessionRecord:
    return SessionRecord(
        token_hash=token_hash, user_id=user_id, created=created, expires=created + 3600
    )


async def sessions_of(store: Store, *hashes: str) -> list[str]:
    """Which of ``hashes`` the store still knows."""
    return [h for h in hashes if await store.session(h) is not None]


async def counts(database: Database, user_id: str) -> list[int]:
    """How many rows of the user each table holding users' rows has, as a separate connection
    sees them."""
    found = []
    for table in ("users", "sessions", "login_events", "codes"):
        sql = f"SELECT count(*) FROM {table} WHERE user_id = ?"  # noqa: S608
        found.append(int((await database.rows(sql, user_id))[0][0]))
    return found


# -- get_user --------------------------------------------------------------------------------


async def test_get_user_is_bound_to_its_scope(store: Store) -> None:
    await store.create_user(record("u1", "Donna", "d@x.com", extra={"lv": 3}))

    assert await store.get_user("s", "u1") == record("u1", "Donna", "d@x.com", extra={"lv": 3})
    assert await store.get_user("other", "u1") is None
    assert await store.get_user("s", "u2") is None


# -- update_user ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (UserChanges(username="Dana"), {"username": "Dana"}),
        (UserChanges(email="Dana@X.com"), {"email": "Dana@X.com"}),
        (UserChanges(password_hash="$argon2id$new"), {"password_hash": "$argon2id$new"}),
        (UserChanges(extra={"lv": 4, "hat": "red"}), {"extra": {"lv": 4, "hat": "red"}}),
        (UserChanges(extra={"lv": None}), {"extra": None}),
        (UserChanges(group="mods"), {"group": "mods"}),
        (UserChanges(active=False), {"active": False}),
        (UserChanges(), {}),
    ],
    ids=["username", "email", "password_hash", "extra", "extra-emptied", "group", "active", "none"],
)
async def test_update_user_changes_each_field(
    store: Store, changes: UserChanges, expected: dict[str, Any]
) -> None:
    old = record("u1", "Donna", "d@x.com", extra={"lv": 3})
    await store.create_user(old)

    updated = await store.update_user("u1", changes)

    assert updated == attrs.evolve(old, **expected)
    assert await store.get_user("s", "u1") == updated


async def test_a_new_username_and_email_are_found_by_their_keys(store: Store) -> None:
    await store.create_user(record("u1", "Donna", "d@x.com"))

    await store.update_user("u1", UserChanges(username="Dana", email="Dana@X.com"))

    found = await store.find_user("s", username="DANA")
    assert found is not None
    assert found.user_id == "u1"
    assert await store.find_user("s", email="dana@x.COM") == found
    assert await store.find_user("s", username="Donna") is None
    assert await store.find_user("s", email="d@x.com") is None
    assert not await store.user_exists("s", "donna", "d@x.com")


async def test_update_user_of_an_unknown_id_is_none(store: Store) -> None:
    assert await store.update_user("nobody", UserChanges(group="mods")) is None


async def test_update_user_can_end_every_session_of_the_user(store: Store) -> None:
    await store.create_user(record("u1", "Donna"))
    await store.create_user(record("u2", "Tina"))
    for token_hash, user_id in (("a", "u1"), ("b", "u1"), ("t", "u2")):
        await store.open_session(session(token_hash, user_id), None)

    await store.update_user("u1", UserChanges(active=False, revoke="all", keep="a"))

    assert await sessions_of(store, "a", "b", "t") == ["t"]


async def test_update_user_can_end_the_other_sessions_and_keep_one(store: Store) -> None:
    await store.create_user(record("u1", "Donna"))
    await store.create_user(record("u2", "Tina"))
    for token_hash, user_id in (("a", "u1"), ("b", "u1"), ("c", "u1"), ("t", "u2")):
        await store.open_session(session(token_hash, user_id), None)

    await store.update_user("u1", UserChanges(password_hash="$new", revoke="others", keep="b"))

    assert await sessions_of(store, "a", "b", "c", "t") == ["b", "t"]


async def test_update_user_without_revoke_keeps_every_session(store: Store) -> None:
    await store.create_user(record("u1", "Donna"))
    await store.open_session(session("a"), None)

    await store.update_user("u1", UserChanges(password_hash="$new"))

    assert await sessions_of(store, "a") == ["a"]


@pytest.mark.parametrize(
    "clash",
    [UserChanges(username="TINA"), UserChanges(email="T@X.COM")],
    ids=["username", "email"],
)
async def test_a_duplicate_in_update_user_changes_nothing(store: Store, clash: UserChanges) -> None:
    await store.create_user(record("u1", "Donna", "d@x.com", extra={"lv": 3}))
    await store.create_user(record("u2", "Tina", "t@x.com"))
    await store.open_session(session("a"), None)
    before = await store.get_user("s", "u1")

    with pytest.raises(DuplicateUserError):
        await store.update_user(
            "u1",
            attrs.evolve(clash, extra={"lv": 4}, group="mods", password_hash="$new", revoke="all"),
        )

    assert await store.get_user("s", "u1") == before
    assert await sessions_of(store, "a") == ["a"]
    # The store is still usable: the failed transaction was rolled back.
    assert (await store.update_user("u1", UserChanges(group="ok"))) is not None


async def test_a_duplicate_of_a_user_in_another_scope_is_no_duplicate(
    store: Store,
) -> None:
    await store.create_user(record("u1", "Donna", "d@x.com"))
    await store.create_user(record("u2", "Tina", "t@x.com", scope="other"))

    updated = await store.update_user("u1", UserChanges(username="Tina", email="t@x.com"))

    assert updated is not None
    assert updated.username == "Tina"


async def test_extra_too_large_in_update_user_changes_nothing(store: Store) -> None:
    half = "x" * (EXTRA_MAX_BYTES // 2)
    await store.create_user(record("u1", "Donna", extra={"a": half}))
    await store.open_session(session("a"), None)
    before = await store.get_user("s", "u1")

    with pytest.raises(ExtraTooLarge):
        await store.update_user("u1", UserChanges(extra={"b": half}, username="Dana", revoke="all"))

    assert await store.get_user("s", "u1") == before
    assert await sessions_of(store, "a") == ["a"]


async def test_activating_clears_the_confirmation_and_its_codes_only(
    store: Store,
) -> None:
    await store.create_user(
        record("u1", "Donna", active=False, confirmation="pending"), code("confirm-1", mail=MAIL)
    )
    await store.replace_code(code("reset-1", purpose="reset"))

    updated = await store.update_user("u1", UserChanges(active=True))

    assert updated is not None
    assert (updated.active, updated.confirmation) == (True, None)
    assert await store.peek_code("confirm-1", "confirm", NOW) is CodeState.UNKNOWN
    assert await store.confirmation_settings("u1") is None
    assert await store.peek_code("reset-1", "reset", NOW) is CodeState.VALID


async def test_concurrent_updates_from_two_stores_lose_no_change(
    store: Store, database: Database
) -> None:
    """Two servers merging keys into one user's extra at once: every key is kept."""
    other = await database.open_another()
    await store.create_user(record("u1", "Donna", extra={"lv": 3}))

    await asyncio.gather(
        *(
            (store, other)[i % 2].update_user("u1", UserChanges(extra={f"k{i}": i}))
            for i in range(20)
        )
    )

    user = await store.get_user("s", "u1")
    assert user is not None
    assert user.extra == {"lv": 3, **{f"k{i}": i for i in range(20)}}


# -- delete_user ---------------------------------------------------------------------------


async def test_delete_user_takes_its_sessions_login_events_and_codes_along(
    store: Store, database: Database
) -> None:
    for user_id, name in (("u1", "Donna"), ("u2", "Tina")):
        await store.create_user(
            record(user_id, name, active=False, confirmation="pending"),
            code(f"confirm-{user_id}", user_id),
        )
        await store.replace_code(code(f"reset-{user_id}", user_id, "reset"))
        await store.open_session(
            session(f"s-{user_id}", user_id), LoginEvent(user_id, NOW, None, None)
        )
    assert await counts(database, "u1") == [1, 1, 1, 2]

    assert await store.delete_user("s", "u1") is True

    assert await counts(database, "u1") == [0, 0, 0, 0]
    assert await counts(database, "u2") == [1, 1, 1, 2]
    assert await store.login_events("u1") == []
    assert await store.peek_code("reset-u1", "reset", NOW) is CodeState.UNKNOWN
    assert await store.delete_user("s", "u1") is False


async def test_delete_user_is_bound_to_its_scope(store: Store) -> None:
    await store.create_user(record("u1", "Donna"))

    assert await store.delete_user("other", "u1") is False
    assert await store.get_user("s", "u1") is not None


# -- set_password_hash and set_active -------------------------------------------------------


async def test_set_password_hash_and_set_active_change_that_user_only(store: Store) -> None:
    await store.create_user(record("u1", "Donna"))
    await store.create_user(record("u2", "Tina"))

    await store.set_password_hash("u1", "$argon2id$new")
    await store.set_active("u1", False)
    await store.set_active("nobody", False)  # no such user: nothing happens

    assert await store.get_user("s", "u1") == record(
        "u1", "Donna", password_hash="$argon2id$new", active=False
    )
    assert await store.get_user("s", "u2") == record("u2", "Tina")
    await store.set_active("u1", True)
    again = await store.get_user("s", "u1")
    assert again is not None
    assert again.active is True


# -- set_confirmation ----------------------------------------------------------------------


async def test_set_confirmation_records_whether_the_mail_went_out(store: Store) -> None:
    await store.create_user(record("u1", "Donna", active=False, confirmation="pending"))

    await store.set_confirmation("u1", "failed")
    failed = await store.get_user("s", "u1")
    await store.set_confirmation("u1", "pending")
    pending = await store.get_user("s", "u1")

    assert failed is not None
    assert failed.confirmation == "failed"
    assert pending is not None
    assert pending.confirmation == "pending"


async def test_set_confirmation_leaves_a_confirmed_user_confirmed(store: Store) -> None:
    await store.create_user(record("u1", "Donna"))

    await store.set_confirmation("u1", "failed")

    user = await store.get_user("s", "u1")
    assert user is not None
    assert user.confirmation is None


# -- replace_code --------------------------------------------------------------------------


async def test_a_replaced_code_becomes_unknown(store: Store) -> None:
    await store.create_user(record("u1", "Donna", active=False, confirmation="pending"), code("c1"))
    await store.replace_code(code("r1", purpose="reset"))

    assert await store.replace_code(code("c2", created=NOW + 1)) is True

    assert await store.peek_code("c1", "confirm", NOW + 2) is CodeState.UNKNOWN
    assert await store.peek_code("c2", "confirm", NOW + 2) is CodeState.VALID
    assert await store.peek_code("r1", "reset", NOW + 2) is CodeState.VALID  # other purpose


async def test_replace_code_touches_only_its_own_user(store: Store) -> None:
    await store.create_user(record("u1", "Donna"))
    await store.create_user(record("u2", "Tina"))
    await store.replace_code(code("r-u2", "u2", "reset"))

    await store.replace_code(code("r-u1", "u1", "reset"))

    assert await store.peek_code("r-u2", "reset", NOW) is CodeState.VALID


async def test_counted_codes_respect_the_minimum_interval(store: Store) -> None:
    await store.create_user(record("u1", "Donna", active=False, confirmation="pending"), code("c0"))

    first = await store.replace_code(code("c1", counted=True), min_interval=60)
    too_soon = await store.replace_code(code("c2", created=NOW + 59, counted=True), min_interval=60)
    later = await store.replace_code(code("c3", created=NOW + 60, counted=True), min_interval=60)

    assert (first, too_soon, later) == (True, False, True)
    assert await store.peek_code("c0", "confirm", NOW + 61) is CodeState.UNKNOWN
    assert await store.peek_code("c2", "confirm", NOW + 61) is CodeState.UNKNOWN
    assert await store.peek_code("c3", "confirm", NOW + 61) is CodeState.VALID


async def test_concurrent_counted_codes_from_two_stores_respect_the_interval(
    store: Store, database: Database
) -> None:
    """Resends of one confirmation arriving at two servers at once: one code is made."""
    other = await database.open_another()
    await store.create_user(record("u1", "Donna", active=False, confirmation="pending"))

    made = await asyncio.gather(
        *(
            (store, other)[i % 2].replace_code(
                code(f"c{i}", created=NOW + i / 100, counted=True), min_interval=60
            )
            for i in range(20)
        )
    )

    assert made.count(True) == 1
    winner = f"c{made.index(True)}"
    assert await database.rows("SELECT code_hash FROM codes") == [(winner,)]


async def test_a_refused_counted_code_changes_nothing(store: Store) -> None:
    await store.create_user(record("u1", "Donna", active=False, confirmation="pending"))
    await store.replace_code(code("c1", counted=True, mail=MAIL))

    refused = await store.replace_code(
        code("c2", created=NOW + 1, counted=True, mail={"subject": "other"}), min_interval=60
    )

    assert refused is False
    assert await store.peek_code("c1", "confirm", NOW + 2) is CodeState.VALID
    assert await store.confirmation_settings("u1") == MAIL


async def test_uncounted_codes_ignore_the_minimum_interval(store: Store) -> None:
    await store.create_user(record("u1", "Donna"))
    await store.replace_code(code("c1", counted=True))

    assert await store.replace_code(code("c2", created=NOW + 1), min_interval=3600) is True
    assert await store.replace_code(code("c3", created=NOW + 2), min_interval=3600) is True
    assert await store.peek_code("c3", "confirm", NOW + 3) is CodeState.VALID


async def test_the_interval_is_per_user_and_purpose(store: Store) -> None:
    await store.create_user(record("u1", "Donna"))
    await store.create_user(record("u2", "Tina"))
    await store.replace_code(code("c1", "u1", counted=True))

    other_user = await store.replace_code(code("c2", "u2", counted=True), min_interval=60)
    other_purpose = await store.replace_code(
        code("r1", "u1", "reset", counted=True), min_interval=60
    )

    assert (other_user, other_purpose) == (True, True)


# -- peek_code and use_code ----------------------------------------------------------------


async def test_peek_code_tells_every_state_without_using_the_code(store: Store) -> None:
    await store.create_user(record("u1", "Donna", active=False, confirmation="pending"), code("c1"))

    assert await store.peek_code("c1", "confirm", NOW) is CodeState.VALID
    assert await store.peek_code("c1", "confirm", NOW) is CodeState.VALID
    assert await store.peek_code("c1", "confirm", NOW + 3600) is CodeState.EXPIRED
    assert await store.peek_code("c1", "reset", NOW) is CodeState.UNKNOWN  # wrong purpose
    assert await store.peek_code("nope", "confirm", NOW) is CodeState.UNKNOWN
    user = await store.get_user("s", "u1")
    assert user is not None
    assert user.active is False
    assert await store.use_code("c1", "confirm", NOW) is CodeState.VALID
    assert await store.peek_code("c1", "confirm", NOW) is CodeState.USED


async def test_using_a_confirmation_code_activates_its_user_once(store: Store) -> None:
    await store.create_user(record("u1", "Donna", active=False, confirmation="pending"), code("c1"))

    first = await store.use_code("c1", "confirm", NOW + 1)
    second = await store.use_code("c1", "confirm", NOW + 2)

    assert (first, second) == (CodeState.VALID, CodeState.USED)
    user = await store.get_user("s", "u1")
    assert user is not None
    assert (user.active, user.confirmation) == (True, None)


@pytest.mark.parametrize(
    ("code_hash", "purpose", "at", "state"),
    [
        ("c1", "confirm", NOW + 3600, CodeState.EXPIRED),
        ("c1", "reset", NOW, CodeState.UNKNOWN),
        ("nope", "confirm", NOW, CodeState.UNKNOWN),
    ],
    ids=["expired", "wrong-purpose", "unknown"],
)
async def test_a_code_that_is_not_valid_does_nothing(
    store: Store, code_hash: str, purpose: str, at: float, state: CodeState
) -> None:
    await store.create_user(record("u1", "Donna", active=False, confirmation="pending"), code("c1"))

    assert await store.use_code(code_hash, purpose, at, password_hash="$new") is state

    user = await store.get_user("s", "u1")
    assert user is not None
    assert (user.active, user.confirmation, user.password_hash) == (
        False,
        "pending",
        "$argon2id$old",
    )
    assert await store.peek_code("c1", "confirm", NOW) is CodeState.VALID


async def test_using_a_reset_code_sets_the_password_and_ends_every_session(
    store: Store,
) -> None:
    await store.create_user(record("u1", "Donna"))
    await store.create_user(record("u2", "Tina"))
    await store.replace_code(code("r1", purpose="reset"))
    for token_hash, user_id in (("a", "u1"), ("b", "u1"), ("t", "u2")):
        await store.open_session(session(token_hash, user_id), None)

    state = await store.use_code("r1", "reset", NOW + 1, password_hash="$argon2id$new")

    assert state is CodeState.VALID
    user = await store.get_user("s", "u1")
    assert user is not None
    assert user.password_hash == "$argon2id$new"
    assert await sessions_of(store, "a", "b", "t") == ["t"]
    assert await store.use_code("r1", "reset", NOW + 2, password_hash="$x") is CodeState.USED
    user = await store.get_user("s", "u1")
    assert user is not None
    assert user.password_hash == "$argon2id$new"


async def test_an_expired_reset_code_sets_nothing(store: Store) -> None:
    await store.create_user(record("u1", "Donna"))
    await store.replace_code(code("r1", purpose="reset", ttl=10))
    await store.open_session(session("a"), None)

    state = await store.use_code("r1", "reset", NOW + 10, password_hash="$new")

    assert state is CodeState.EXPIRED
    user = await store.get_user("s", "u1")
    assert user is not None
    assert user.password_hash == "$argon2id$old"
    assert await sessions_of(store, "a") == ["a"]


@pytest.mark.parametrize("purpose", ["confirm", "reset"])
async def test_fifty_concurrent_uses_of_one_code_have_one_winner(
    store: Store, purpose: str
) -> None:
    await store.create_user(record("u1", "Donna", active=False, confirmation="pending"))
    await store.replace_code(code("c1", purpose=purpose))

    states = await asyncio.gather(
        *(store.use_code("c1", purpose, NOW + 1, password_hash=f"$h{i}") for i in range(50))
    )

    assert states.count(CodeState.VALID) == 1
    assert states.count(CodeState.USED) == 49
    if purpose == "reset":
        user = await store.get_user("s", "u1")
        assert user is not None
        assert user.password_hash == f"$h{states.index(CodeState.VALID)}"


async def test_fifty_concurrent_uses_from_two_stores_have_one_winner(
    store: Store, database: Database
) -> None:
    """Two servers on one database (each its own connection or pool): still one winner."""
    other = await database.open_another()
    await store.create_user(record("u1", "Donna", active=False, confirmation="pending"), code("c1"))

    states = await asyncio.gather(
        *((store, other)[i % 2].use_code("c1", "confirm", NOW + 1) for i in range(50))
    )

    assert states.count(CodeState.VALID) == 1
    assert states.count(CodeState.USED) == 49
    user = await other.get_user("s", "u1")
    assert user is not None
    assert user.active is True


RIVALS: dict[str, Callable[[Store, int], Awaitable[object]]] = {
    # Another reset link mailed meanwhile.
    "replace_code": lambda store, u: store.replace_code(code(f"new{u}", f"u{u}", "reset")),
    # A new password set meanwhile (which expires the reset links).
    "update_user": lambda store, u: store.update_user(f"u{u}", UserChanges(password_hash="$x")),
    # The user deleted meanwhile (with its codes).
    "delete_user": lambda store, u: store.delete_user("s", f"u{u}"),
}


@pytest.mark.parametrize("rival", RIVALS)
async def test_a_code_used_while_another_store_changes_its_user_ends_without_error(
    store: Store, database: Database, rival: str
) -> None:
    """A reset link followed at one server while another changes the same user: each call
    waits for the other (in either order), neither fails."""
    other = await database.open_another()
    for u in range(50):
        await store.create_user(record(f"u{u}", f"n{u}"))
        await store.replace_code(code(f"r{u}", f"u{u}", "reset"))

    results = await asyncio.gather(
        *(
            call
            for u in range(50)
            for call in (
                store.use_code(f"r{u}", "reset", NOW + 1, password_hash="$new"),
                RIVALS[rival](other, u),
            )
        ),
        return_exceptions=True,
    )

    assert [result for result in results if isinstance(result, BaseException)] == []
    assert {state for state in results[::2]} <= {
        CodeState.VALID,
        CodeState.UNKNOWN,
        CodeState.EXPIRED,
    }


# -- code_user -------------------------------------------------------------------------------


async def test_code_user_is_the_user_a_code_was_made_for_in_any_state(store: Store) -> None:
    pending = record("u1", "Donna", active=False, confirmation="pending")
    await store.create_user(pending, code("c1"))
    await store.create_user(record("u2", "Tina"))
    await store.replace_code(code("r2", "u2", "reset"))

    assert await store.code_user("c1") == pending
    assert await store.code_user("r2") == record("u2", "Tina")
    await store.use_code("c1", "confirm", NOW)
    used = await store.code_user("c1")  # used: still the user's
    assert used is not None
    assert used.user_id == "u1"
    assert await store.code_user("nope") is None
    await store.delete_user("s", "u2")
    assert await store.code_user("r2") is None


# -- confirmation_settings -----------------------------------------------------------------


async def test_confirmation_settings_are_those_of_the_newest_confirmation_code(
    store: Store,
) -> None:
    await store.create_user(
        record("u1", "Donna", active=False, confirmation="pending"), code("c1", mail=MAIL)
    )
    assert await store.confirmation_settings("u1") == MAIL

    newer = {**MAIL, "subject": "Welcome again"}
    await store.replace_code(code("c2", created=NOW + 1, counted=True, mail=newer))

    assert await store.confirmation_settings("u1") == newer
    await store.replace_code(code("r1", purpose="reset", created=NOW + 2, mail={"x": "y"}))
    assert await store.confirmation_settings("u1") == newer  # reset codes do not count


async def test_no_confirmation_settings_without_a_confirmation_code(store: Store) -> None:
    await store.create_user(record("u1", "Donna"))
    await store.create_user(record("u2", "Tina", active=False, confirmation="pending"), code("c"))

    assert await store.confirmation_settings("u1") is None
    assert await store.confirmation_settings("u2") is None  # a code made without settings
    assert await store.confirmation_settings("nobody") is None


# -- sessions ------------------------------------------------------------------------------


async def test_a_session_reads_back_with_its_last_use(store: Store) -> None:
    await store.create_user(record("u1", "Donna"))
    await store.open_session(session("a"), None)

    opened = await store.session("a")
    await store.touch_session("a", NOW + 90)
    touched = await store.session("a")

    assert opened == SessionRecord("a", "u1", NOW, NOW + 3600, last_seen=NOW)
    assert touched == attrs.evolve(opened, last_seen=NOW + 90)
    assert await store.session("nope") is None
    await store.touch_session("nope", NOW)  # no such session: nothing happens
    assert await store.session("nope") is None


async def test_revoke_sessions_ends_only_that_users_sessions(store: Store) -> None:
    await store.create_user(record("u1", "Donna"))
    await store.create_user(record("u2", "Tina"))
    for token_hash, user_id in (("a", "u1"), ("b", "u1"), ("t", "u2")):
        await store.open_session(session(token_hash, user_id), None)

    await store.revoke_sessions("u1")

    assert await sessions_of(store, "a", "b", "t") == ["t"]
    assert await store.session_user("a", NOW) is None
    assert await store.session_user("t", NOW) == "u2"
    assert await store.get_user("s", "u1") is not None


# -- update_user and the links mailed before it ------------------------------------------


async def test_deactivating_a_pending_user_ends_the_wait_and_its_link(store: Store) -> None:
    """The administrator's decision wins over a confirmation link mailed earlier."""
    await store.create_user(record("u1", "Donna", active=False, confirmation="pending"), code("c"))

    user = await store.update_user("u1", UserChanges(active=False))

    assert user is not None
    assert (user.active, user.confirmation) == (False, None)
    assert await store.use_code("c", "confirm", NOW) is CodeState.UNKNOWN
    again = await store.get_user("s", "u1")
    assert again is not None
    assert not again.active


@pytest.mark.parametrize(
    ("changes", "expired"),
    [
        (UserChanges(email="new@home.com"), {"confirm", "reset"}),
        (UserChanges(password_hash="$argon2id$new"), {"reset"}),
        (UserChanges(extra={"lv": 2}), set()),
    ],
)
async def test_links_mailed_before_a_change_of_address_or_password_expire(
    store: Store, changes: UserChanges, expired: set[str]
) -> None:
    """A link went to the old address (or was for the old password): it no longer works."""
    pending = record("u1", "Donna", "old@home.com", active=False, confirmation="pending")
    await store.create_user(pending, code("c"))
    await store.replace_code(code("r", purpose="reset"))

    await store.update_user("u1", changes)

    for code_hash, purpose in (("c", "confirm"), ("r", "reset")):
        state = await store.peek_code(code_hash, purpose, NOW)
        assert state is (CodeState.EXPIRED if purpose in expired else CodeState.VALID), purpose


# -- SQLite only: the upgrade of a database of an older schema ----------------------------


async def test_a_schema_2_database_is_upgraded_to_3(path: Path) -> None:
    database_at_version(
        path,
        2,
        "INSERT INTO users (user_id, scope, username, username_key, email, email_key, "
        "password_hash, active, confirmation, user_group, extra, created) "
        "VALUES ('u1', 's', 'Donna', 'donna', 'd@x.com', 'd@x.com', 'h', 0, 'pending', NULL, "
        "NULL, 1)",
    )

    store = SQLiteStore(str(path))
    await store.open()
    try:
        user = await store.get_user("s", "u1")
        assert user is not None
        assert (user.username, user.confirmation) == ("Donna", "pending")
        assert await store.replace_code(code("c1", mail=MAIL)) is True
        assert await store.use_code("c1", "confirm", NOW) is CodeState.VALID
        activated = await store.get_user("s", "u1")
        assert activated is not None
        assert activated.active is True
    finally:
        await store.close()

    # Version 3 made the codes table; later versions may follow it.
    assert sqlite_rows(path, "PRAGMA user_version") == [(len(MIGRATIONS),)]
    assert len(MIGRATIONS) >= 3
    assert sqlite_rows(path, "SELECT count(*) FROM codes") == [(1,)]


async def test_reads_never_see_a_code_replacement_half_done(store: Store) -> None:
    """replace_code deletes and inserts in one transaction: a read made meanwhile (another
    request's, on SQLite the same connection) sees the old code or the new, never neither."""
    mail = {"from_email": "game@example.com", "subject": "Confirm"}
    await store.create_user(
        record("u1", "Donna", active=False, confirmation="pending"), code("c0", mail=mail)
    )
    seen: list[dict[str, Any] | None] = []

    async def replace() -> None:
        for n in range(1, 31):
            await store.replace_code(code(f"c{n}", created=NOW + n, mail=mail))

    async def read() -> None:
        for _ in range(150):
            seen.append(await store.confirmation_settings("u1"))

    await asyncio.gather(replace(), read(), read())
    assert len(seen) == 300
    assert all(settings == mail for settings in seen)
