"""Login limits (608): ``max_sessions_per_user`` under both policies against the real server,
with 20 concurrent logins and a reader watching the database meanwhile; and the store's
``open_session`` within a `SessionLimit`, called directly."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest

import corelogin
from corelogin.server import RunningServer, ServerConfig, start_server
from corelogin.server.store import LoginEvent, SessionRecord, UserRecord
from corelogin.server.store.base import SessionLimit, SessionLimitReached
from corelogin.server.store.sqlite import SQLiteStore
from corelogin.server.tokens import hash_token
from corelogin.wire import APP_KEY_HEADER, PATHS
from tests.helpers import APP_KEY, PASSWORD, make_user, server_config_for

LIMIT_REACHED = 608
DONNA = {"username": "Donna", "password": PASSWORD}


def db_path(config: ServerConfig) -> str:
    return config.db.removeprefix("sqlite:///")


def live_sessions(path: str, user_id: str) -> list[tuple[str, float]]:
    """(token_hash, created) of the user's unexpired sessions, as another connection sees them."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return list(
            db.execute(
                "SELECT token_hash, created FROM sessions WHERE user_id = ? "
                "AND expires > strftime('%s', 'now') ORDER BY rowid",
                (user_id,),
            )
        )
    finally:
        db.close()


@contextmanager
def most_live_sessions(path: str, user_id: str) -> Iterator[list[int]]:
    """Watch the user's live sessions from another thread and connection for as long as the
    block runs; the list gets the most ever seen."""
    seen = [0]
    stop = threading.Event()

    def watch() -> None:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            while not stop.is_set():
                (count,) = db.execute(
                    "SELECT count(*) FROM sessions WHERE user_id = ? "
                    "AND expires > strftime('%s', 'now')",
                    (user_id,),
                ).fetchone()
                seen[0] = max(seen[0], count)
        finally:
            db.close()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        yield seen
    finally:
        stop.set()
        watcher.join()


async def raw_login(server: RunningServer, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            server.url + PATHS["login"],
            json={"scope": "default", **params},
            headers={APP_KEY_HEADER: APP_KEY},
        ) as response,
    ):
        return response.status, await response.json()


@pytest.fixture(params=["reject", "evict_oldest"])
def server_config(tmp_path: Path, request: pytest.FixtureRequest) -> ServerConfig:
    return attrs.evolve(
        server_config_for(tmp_path / "corelogin.sqlite3"),
        max_sessions_per_user=2,
        session_limit_policy=request.param,
    )


async def test_twenty_concurrent_logins_never_make_more_than_two_live_sessions(
    core: corelogin.Core, server: RunningServer, server_config: ServerConfig
) -> None:
    path = db_path(server_config)
    donna = await make_user(core, "Donna")
    tina = await make_user(core, "Tina")
    for _ in range(2):
        assert (await core.users.login({"username": "Tina", "password": PASSWORD})).error is None
    tina_sessions = live_sessions(path, tina.user_id)

    with most_live_sessions(path, donna.user_id) as seen:
        events = await asyncio.gather(*(core.users.login(DONNA) for _ in range(20)))

    statuses = sorted(event.status or 0 for event in events)
    if server_config.session_limit_policy == "reject":
        assert statuses == [0] * 2 + [LIMIT_REACHED] * 18
        refused = next(e for e in events if e.status)
        assert refused.error == "multiple-login limit reached"
    else:
        assert statuses == [0] * 20
    assert 1 <= seen[0] <= 2
    remaining = live_sessions(path, donna.user_id)
    assert len(remaining) == 2
    # They are the newest: the sessions of the last two logins the database took.
    db = sqlite3.connect(path)
    try:
        last_two = db.execute(
            "SELECT at FROM login_events WHERE user_id = ? ORDER BY id DESC LIMIT 2",
            (donna.user_id,),
        ).fetchall()
        events_kept = db.execute(
            "SELECT count(*) FROM login_events WHERE user_id = ?", (donna.user_id,)
        ).fetchone()
    finally:
        db.close()
    assert {created for _, created in remaining} == {at for (at,) in last_two}
    # A refused login leaves no login event; an evicting one does.
    assert events_kept == (2 if server_config.session_limit_policy == "reject" else 20,)
    assert live_sessions(path, tina.user_id) == tina_sessions  # other users: untouched


async def test_one_login_beyond_the_limit_is_refused_or_ends_the_oldest(
    core: corelogin.Core, server: RunningServer, server_config: ServerConfig
) -> None:
    await make_user(core, "Donna")
    tokens = []
    for _ in range(2):
        http_status, answer = await raw_login(server, DONNA)
        assert http_status == 200, answer
        tokens.append(answer["session"]["token"])

    http_status, answer = await raw_login(server, DONNA)

    kept = [await server.store.session(hash_token(token)) is not None for token in tokens]
    if server_config.session_limit_policy == "reject":
        assert (http_status, answer["status"]) == (409, LIMIT_REACHED)
        assert kept == [True, True]
    else:
        assert http_status == 200, answer
        assert kept == [False, True]  # the oldest ended
        assert await server.store.session(hash_token(answer["session"]["token"])) is not None


async def test_after_a_logout_there_is_room_again(
    core: corelogin.Core, server: RunningServer, server_config: ServerConfig
) -> None:
    user = await make_user(core, "Donna")
    for _ in range(2):
        assert (await raw_login(server, DONNA))[0] == 200
    await server.store.revoke_sessions(user.user_id)

    assert (await raw_login(server, DONNA))[0] == 200


async def test_zero_means_no_limit(server_config: ServerConfig) -> None:
    config = attrs.evolve(server_config, max_sessions_per_user=0)
    async with await start_server(config) as server, corelogin.init(server.url, APP_KEY) as core:
        user = await make_user(core, "Donna")
        events = await asyncio.gather(*(core.users.login(DONNA) for _ in range(6)))
        assert [e.error for e in events] == [None] * 6
        assert len(live_sessions(db_path(config), user.user_id)) == 6


# -- the store on its own ----------------------------------------------------------------------

NOW = 1_000_000.0


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(str(tmp_path / "store.sqlite3"))
    await opened.open()
    for user_id in ("u1", "u2"):
        await opened.create_user(
            UserRecord(
                user_id=user_id,
                scope="s",
                username=user_id,
                email=None,
                password_hash="",
                active=True,
                confirmation=None,
                group=None,
                extra=None,
                created=1,
            )
        )
    yield opened
    await opened.close()


def session(
    token_hash: str, created: float = NOW, *, user_id: str = "u1", expires: float | None = None
) -> SessionRecord:
    return SessionRecord(
        token_hash=token_hash,
        user_id=user_id,
        created=created,
        expires=created + 3600 if expires is None else expires,
    )


async def hashes(store: SQLiteStore, *candidates: str) -> list[str]:
    return [h for h in candidates if await store.session(h) is not None]


async def test_the_store_refuses_beyond_the_limit_changing_nothing(store: SQLiteStore) -> None:
    limit = SessionLimit(2)
    await store.open_session(session("a"), None, limit=limit)
    await store.open_session(session("b", NOW + 1), None, limit=limit)

    with pytest.raises(SessionLimitReached) as refused:
        await store.open_session(
            session("c", NOW + 2), LoginEvent("u1", NOW + 2, None, None), limit=limit
        )
    assert refused.value.status == LIMIT_REACHED
    assert refused.value.http_status == 409
    assert await hashes(store, "a", "b", "c") == ["a", "b"]
    assert await store.login_events("u1") == []
    # Another user has room of their own.
    await store.open_session(session("d", NOW + 2, user_id="u2"), None, limit=limit)


@pytest.mark.parametrize("evict", [False, True])
async def test_concurrent_opens_in_the_store_keep_within_the_limit(
    store: SQLiteStore, evict: bool
) -> None:
    limit = SessionLimit(2, evict=evict)

    async def open_one(i: int) -> bool:
        try:
            await store.open_session(session(f"t{i}", NOW + i / 100), None, limit=limit)
        except SessionLimitReached:
            return False
        return True

    opened = await asyncio.gather(*(open_one(i) for i in range(20)))

    assert opened.count(True) == (20 if evict else 2)
    assert len(await hashes(store, *(f"t{i}" for i in range(20)))) == 2


async def test_the_store_evicts_the_first_opened_whatever_its_clock_said(
    store: SQLiteStore,
) -> None:
    limit = SessionLimit(2, evict=True)
    await store.open_session(session("a", NOW + 5), None, limit=limit)
    await store.open_session(session("b", NOW + 1), None, limit=limit)
    await store.open_session(session("c", NOW + 6), None, limit=limit)

    assert await hashes(store, "a", "b", "c") == ["b", "c"]


async def test_expired_and_idle_sessions_do_not_count(store: SQLiteStore) -> None:
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


async def test_the_store_applies_its_own_limit_when_given_none(store: SQLiteStore) -> None:
    assert store.session_limit == SessionLimit()  # no limit unless the server sets one
    for name in "abc":
        await store.open_session(session(name), None)
    store.session_limit = SessionLimit(3)
    with pytest.raises(SessionLimitReached):
        await store.open_session(session("d"), None)
    await store.open_session(session("d"), None, limit=SessionLimit(0))  # given: it wins
