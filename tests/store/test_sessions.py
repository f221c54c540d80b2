"""The store's sessions on each backend: a session and its login event written together, the
session limit (refusing changing nothing, or ending the first opened; live sessions only),
logouts; and two stores on one database (two server instances): concurrent logins keep within
the limit, a revoke on one holds on the other at once."""

from __future__ import annotations

import asyncio

import pytest

from corelogin.server.store import LoginEvent, SessionRecord, Store
from corelogin.server.store.base import SessionLimit, SessionLimitReached
from corelogin.wire import Status
from tests.store.conftest import Database, record

NOW = 1_000_000.0


def session(
    token_hash: str, created: float = NOW, user_id: str = "u1", *, expires: float | None = None
) -> SessionRecord:
    return SessionRecord(
        token_hash=token_hash,
        user_id=user_id,
        created=created,
        expires=created + 3600 if expires is None else expires,
    )


async def hashes(store: Store, *candidates: str) -> list[str]:
    """Which of ``candidates`` the store still knows."""
    return [h for h in candidates if await store.session(h) is not None]


@pytest.fixture
async def users(store: Store) -> None:
    """u1 Donna and u2 Tina."""
    await store.create_user(record("u1", "Donna"))
    await store.create_user(record("u2", "Tina"))


async def test_session_and_login_event_are_kept_together(store: Store) -> None:
    await store.create_user(record("u1", "Donna"))
    opened = SessionRecord(token_hash="h1", user_id="u1", created=10.0, expires=20.0)
    await store.open_session(opened, LoginEvent("u1", 10.0, "127.0.0.1", "agent"))
    assert await store.session_user("h1", now=15.0) == "u1"
    assert await store.session_user("h1", now=25.0) is None
    assert await store.login_events("u1") == [LoginEvent("u1", 10.0, "127.0.0.1", "agent")]


async def test_a_failed_session_write_leaves_no_login_event(
    store: Store, database: Database
) -> None:
    await store.create_user(record("u1", "Donna"))
    opened = SessionRecord(token_hash="h1", user_id="u1", created=1.0, expires=2.0)
    await store.open_session(opened, None)
    with pytest.raises(database.integrity_error):  # same token hash: the insert fails
        await store.open_session(opened, LoginEvent("u1", 1.0, None, None))
    assert await store.login_events("u1") == []


async def test_end_session_ends_that_session_only(store: Store) -> None:
    await store.create_user(record("u1", "Donna"))
    await store.open_session(session("a"), None)
    await store.open_session(session("b"), None)

    await store.end_session("a")
    await store.end_session("nope")  # no such session: nothing happens

    assert await hashes(store, "a", "b") == ["b"]
    assert await store.session_user("a", NOW) is None


# -- the session limit -----------------------------------------------------------------------


@pytest.mark.usefixtures("users")
async def test_the_store_refuses_beyond_the_limit_changing_nothing(store: Store) -> None:
    limit = SessionLimit(2)
    await store.open_session(session("a"), None, limit=limit)
    await store.open_session(session("b", NOW + 1), None, limit=limit)

    with pytest.raises(SessionLimitReached) as refused:
        await store.open_session(
            session("c", NOW + 2), LoginEvent("u1", NOW + 2, None, None), limit=limit
        )
    assert refused.value.status == Status.LOGIN_LIMIT
    assert await hashes(store, "a", "b", "c") == ["a", "b"]
    assert await store.login_events("u1") == []
    # Another user has room of their own.
    await store.open_session(session("d", NOW + 2, "u2"), None, limit=limit)


@pytest.mark.usefixtures("users")
async def test_the_store_evicts_the_first_opened_whatever_its_clock_said(store: Store) -> None:
    limit = SessionLimit(2, evict=True)
    await store.open_session(session("a", NOW + 5), None, limit=limit)
    await store.open_session(session("b", NOW + 1), None, limit=limit)
    await store.open_session(session("t", NOW, "u2"), None, limit=limit)
    await store.open_session(session("c", NOW + 6), None, limit=limit)

    assert await hashes(store, "a", "b", "c", "t") == ["b", "c", "t"]


@pytest.mark.usefixtures("users")
async def test_expired_and_idle_sessions_do_not_count(store: Store) -> None:
    await store.open_session(session("expired", NOW - 100, expires=NOW - 1), None)
    await store.open_session(session("idle", NOW - 100), None)
    limit = SessionLimit(1, idle_seconds=50)

    await store.open_session(session("new", NOW), None, limit=limit)

    # Neither counted, nor ended: only live sessions are the limit's business.
    assert await hashes(store, "expired", "idle", "new") == ["expired", "idle", "new"]
    with pytest.raises(SessionLimitReached):
        await store.open_session(session("newer", NOW + 1), None, limit=limit)
    # Without idle_seconds an idle session is live until it expires.
    with pytest.raises(SessionLimitReached):
        await store.open_session(session("other", NOW + 1), None, limit=SessionLimit(2))


@pytest.mark.usefixtures("users")
async def test_a_session_used_lately_is_not_idle(store: Store) -> None:
    await store.open_session(session("old", NOW - 100), None)
    await store.touch_session("old", NOW - 10)

    with pytest.raises(SessionLimitReached):
        await store.open_session(session("new", NOW), None, limit=SessionLimit(1, idle_seconds=50))


@pytest.mark.usefixtures("users")
async def test_the_store_applies_its_own_limit_when_given_none(store: Store) -> None:
    assert store.session_limit == SessionLimit()  # no limit unless the server sets one
    for name in "abc":
        await store.open_session(session(name), None)
    store.session_limit = SessionLimit(3)
    with pytest.raises(SessionLimitReached):
        await store.open_session(session("d"), None)
    await store.open_session(session("d"), None, limit=SessionLimit(0))  # given: it wins
    assert await hashes(store, "a", "b", "c", "d") == ["a", "b", "c", "d"]


# -- two stores on one database ----------------------------------------------------------


@pytest.mark.parametrize("evict", [False, True], ids=["refuse", "evict"])
async def test_concurrent_logins_on_two_stores_keep_within_the_session_limit(
    store: Store, database: Database, evict: bool
) -> None:
    other = await database.open_another()
    await store.create_user(record("u1", "Donna"))
    await store.create_user(record("u2", "Tina"))
    limit = SessionLimit(max_sessions=3, evict=evict)

    async def log_in(i: int) -> bool:
        try:
            await (store, other)[i % 2].open_session(
                session(f"t{i}", NOW + i / 100),
                LoginEvent("u1", NOW + i / 100, None, None),
                limit=limit,
            )
        except SessionLimitReached:
            return False
        return True

    opened = await asyncio.gather(*(log_in(i) for i in range(30)))
    # Another user's logins are no business of u1's limit.
    await other.open_session(session("tina", NOW, "u2"), None, limit=limit)

    assert opened.count(True) == (30 if evict else 3)
    live = await database.rows("SELECT token_hash FROM sessions WHERE user_id = ?", "u1")
    assert len(live) == 3
    # A refused login leaves no login event; a login evicted later keeps its own.
    assert len(await store.login_events("u1")) == opened.count(True)
    if not evict:
        assert sorted(row[0] for row in live) == sorted(
            f"t{i}" for i, won in enumerate(opened) if won
        )


async def test_a_revoke_on_one_store_holds_on_the_other_at_once(
    store: Store, database: Database
) -> None:
    other = await database.open_another()
    await store.create_user(record("u1", "Donna"))
    await store.open_session(session("a"), None)
    assert await other.session_user("a", NOW) == "u1"

    await other.revoke_sessions("u1")

    assert await store.session_user("a", NOW) is None
    assert await store.session("a") is None


@pytest.mark.usefixtures("users")
async def test_session_owner_reads_a_session_with_its_user(store: Store) -> None:
    await store.open_session(SessionRecord("so", "u1", created=10.0, expires=20.0), None)
    found = await store.session_owner("so")
    assert found is not None
    session, user = found
    assert (session.token_hash, session.user_id, session.expires) == ("so", "u1", 20.0)
    assert user == await store.get_user(user.scope, "u1")
    assert await store.session_owner("nothing") is None
