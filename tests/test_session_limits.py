"""Login limits (608): ``max_sessions_per_user`` under both policies against the real server,
with 20 concurrent logins and a reader watching the database meanwhile; and the store's
``open_session`` within a `SessionLimit`, called directly."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest

import corelogin
from corelogin.server import RunningServer, ServerConfig, start_server
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
