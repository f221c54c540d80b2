"""Who may get, update and delete a user: the authorization matrix of the calls about a user
(no session, the user's own session, another user's, an expired, idle or revoked one, the admin
key and a wrong one), malformed Authorization headers, scopes, and how often a session's last
use is written."""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest

import corelogin
from corelogin.server import RunningServer, ServerConfig, start_server
from corelogin.server.tokens import hash_token
from corelogin.wire import ADMIN_KEY_HEADER, APP_KEY_HEADER, CALLS
from tests.helpers import APP_KEY, PASSWORD, make_user, server_config_for

ADMIN_KEY = "test-admin-key-0123456789"
WRONG_ADMIN_KEY = "not-the-admin-key-9876"
NEW_PASSWORD = "another fine horse"


@pytest.fixture
def server_config(tmp_path: Path) -> ServerConfig:
    """The shared test server, with an admin key."""
    return attrs.evolve(server_config_for(tmp_path / "corelogin.sqlite3"), admin_key=ADMIN_KEY)


@pytest.fixture
async def cores() -> AsyncIterator[AsyncExitStack]:
    """Closes every Core a test opens through it."""
    async with AsyncExitStack() as stack:
        yield stack


def db_path(config: ServerConfig) -> str:
    return config.db.removeprefix("sqlite:///")


def set_session_expires(config: ServerConfig, token: str, expires: float) -> None:
    """Rewrite a session's absolute expiry in the server's SQLite file."""
    db = sqlite3.connect(db_path(config), timeout=10)
    try:
        with db:
            db.execute(
                "UPDATE sessions SET expires = ? WHERE token_hash = ?", (expires, hash_token(token))
            )
    finally:
        db.close()


def set_session_last_seen(config: ServerConfig, token: str, last_seen: float) -> None:
    """Rewrite when a session was last used (and made, so that nothing is younger)."""
    db = sqlite3.connect(db_path(config), timeout=10)
    try:
        with db:
            db.execute(
                "UPDATE sessions SET last_seen = ?, created = min(created, ?) WHERE token_hash = ?",
                (last_seen, last_seen, hash_token(token)),
            )
    finally:
        db.close()


def session_row(config: ServerConfig, token: str) -> tuple[float, float, float] | None:
    """(created, last_seen, expires) of a session, read from the file, read-only."""
    db = sqlite3.connect(f"file:{db_path(config)}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(
            "SELECT created, last_seen, expires FROM sessions WHERE token_hash = ?",
            (hash_token(token),),
        ).fetchone()
    finally:
        db.close()


async def open_core(
    stack: AsyncExitStack, url: str, *, scope: str = "default", admin_key: str | None = None
) -> corelogin.Core:
    return await stack.enter_async_context(
        corelogin.init(url, APP_KEY, scope=scope, admin_key=admin_key)
    )


async def logged_in(stack: AsyncExitStack, url: str, username: str) -> corelogin.Core:
    """A Core holding a session of ``username``."""
    core = await open_core(stack, url)
    event = await core.users.login({"username": username, "password": PASSWORD})
    assert event.error is None, event
    assert core._session_token is not None
    return core


# -- the matrix ------------------------------------------------------------------------------

# What each column of the matrix sends: the call and, for update, its ``update`` table.
ACTIONS: dict[str, tuple[str, dict[str, Any] | None]] = {
    "get": ("get", None),
    "update": ("update", {"extra": {"seen": 1}}),
    "delete": ("delete", None),
    "group": ("update", {"group": "mods"}),
    "active": ("update", {"active": False}),
}


async def act(core: corelogin.Core, action: str, user_id: str) -> corelogin.Event:
    call, update = ACTIONS[action]
    params: dict[str, Any] = {"user_id": user_id}
    if update is not None:
        params["update"] = update
    method: Callable[[dict[str, Any]], Awaitable[corelogin.Event]] = getattr(core.users, call)
    return await method(params)


Caller = Callable[[AsyncExitStack, RunningServer, ServerConfig], Awaitable[corelogin.Core]]


async def no_session(stack: AsyncExitStack, server: RunningServer, _: ServerConfig) -> Any:
    return await open_core(stack, server.url)


async def own_session(stack: AsyncExitStack, server: RunningServer, _: ServerConfig) -> Any:
    return await logged_in(stack, server.url, "Donna")


async def other_session(stack: AsyncExitStack, server: RunningServer, _: ServerConfig) -> Any:
    await make_user(await open_core(stack, server.url), "Other")
    return await logged_in(stack, server.url, "Other")


async def expired_session(
    stack: AsyncExitStack, server: RunningServer, config: ServerConfig
) -> Any:
    core = await logged_in(stack, server.url, "Donna")
    assert core._session_token is not None
    set_session_expires(config, core._session_token, time.time() - 1)
    return core


async def idle_session(stack: AsyncExitStack, server: RunningServer, config: ServerConfig) -> Any:
    core = await logged_in(stack, server.url, "Donna")
    assert core._session_token is not None
    set_session_last_seen(
        config, core._session_token, time.time() - config.session_idle_seconds - 5
    )
    return core


async def revoked_session(
    stack: AsyncExitStack, server: RunningServer, config: ServerConfig
) -> Any:
    core = await logged_in(stack, server.url, "Donna")
    assert core.users.logged_in_user is not None
    await server.store.revoke_sessions(core.users.logged_in_user.user_id)
    return core


async def admin_key(stack: AsyncExitStack, server: RunningServer, _: ServerConfig) -> Any:
    return await open_core(stack, server.url, admin_key=ADMIN_KEY)


async def wrong_admin_key(stack: AsyncExitStack, server: RunningServer, _: ServerConfig) -> Any:
    return await open_core(stack, server.url, admin_key=WRONG_ADMIN_KEY)


CALLERS: dict[str, Caller] = {
    "no_session": no_session,
    "own_session": own_session,
    "other_session": other_session,
    "expired_session": expired_session,
    "idle_session": idle_session,
    "revoked_session": revoked_session,
    "admin_key": admin_key,
    "wrong_admin_key": wrong_admin_key,
}

OK = None  # success: no status
EVERY = tuple(ACTIONS)

# The status each caller gets for each action on an existing user (DESIGN.md §2).
EXPECTED: dict[str, dict[str, int | None]] = {
    "no_session": dict.fromkeys(EVERY, 610),
    "own_session": {"get": OK, "update": OK, "delete": OK, "group": 610, "active": 610},
    "other_session": dict.fromkeys(EVERY, 610),
    "expired_session": dict.fromkeys(EVERY, 609),
    "idle_session": dict.fromkeys(EVERY, 609),
    "revoked_session": dict.fromkeys(EVERY, 609),
    "admin_key": dict.fromkeys(EVERY, OK),
    "wrong_admin_key": dict.fromkeys(EVERY, 610),
}

MATRIX = [
    pytest.param(caller, action, expected, id=f"{caller}-{action}")
    for caller, row in EXPECTED.items()
    for action, expected in row.items()
]


def check_success(action: str, event: corelogin.Event, user_id: str) -> None:
    """What a successful action answers."""
    if action == "delete":
        assert event.result == 1
        return
    assert isinstance(event.result, corelogin.User)
    assert event.result.user_id == user_id
    if action == "update":
        assert event.result.extra == {"lv": 3, "seen": 1}
    elif action == "group":
        assert event.result.group == "mods"
    elif action == "active":
        assert event.result.active is False


@pytest.mark.parametrize(("caller", "action", "expected"), MATRIX)
async def test_who_may_act_on_an_existing_user(
    core: corelogin.Core,
    server: RunningServer,
    server_config: ServerConfig,
    cores: AsyncExitStack,
    caller: str,
    action: str,
    expected: int | None,
) -> None:
    """Each caller gets exactly its status; a refused call changes nothing."""
    donna = await make_user(core, "Donna", extra={"lv": 3})
    before = await server.store.get_user("default", donna.user_id)
    acting = await CALLERS[caller](cores, server, server_config)

    event = await act(acting, action, donna.user_id)

    assert event.status == expected, event
    after = await server.store.get_user("default", donna.user_id)
    if expected is OK:
        assert event.error is None
        check_success(action, event, donna.user_id)
        if action == "delete":
            assert after is None
        elif action != "get":
            assert after != before
    else:
        assert event.error
        assert event.result is None
        assert after == before


UNKNOWN_EXPECTED: dict[str, dict[str, int | None]] = {
    "no_session": dict.fromkeys(EVERY, 610),
    # A session asking about an id that is not its own learns nothing: 610, as for others.
    "own_session": dict.fromkeys(EVERY, 610),
    "expired_session": dict.fromkeys(EVERY, 609),
    "admin_key": {"get": 604, "update": 604, "delete": OK, "group": 604, "active": 604},
    "wrong_admin_key": dict.fromkeys(EVERY, 610),
}

UNKNOWN_MATRIX = [
    pytest.param(caller, action, expected, id=f"{caller}-{action}")
    for caller, row in UNKNOWN_EXPECTED.items()
    for action, expected in row.items()
]


@pytest.mark.parametrize(("caller", "action", "expected"), UNKNOWN_MATRIX)
async def test_who_may_act_on_an_id_that_does_not_exist(
    core: corelogin.Core,
    server: RunningServer,
    server_config: ServerConfig,
    cores: AsyncExitStack,
    caller: str,
    action: str,
    expected: int | None,
) -> None:
    """Only the admin key learns that an id is unknown (604; delete answers 0)."""
    await make_user(core, "Donna")
    acting = await CALLERS[caller](cores, server, server_config)

    event = await act(acting, action, str(uuid.uuid4()))

    assert event.status == expected, event
    if expected is OK:
        assert event.result == 0
    else:
        assert event.result is None


async def test_admin_delete_of_an_unknown_id_answers_0_and_deletes_nothing(
    core: corelogin.Core, server: RunningServer, cores: AsyncExitStack
) -> None:
    donna = await make_user(core, "Donna")
    admin = await open_core(cores, server.url, admin_key=ADMIN_KEY)

    event = await admin.users.delete({"user_id": "no-such-user"})

    assert event.error is None
    assert event.result == 0
    assert await server.store.get_user("default", donna.user_id) is not None


async def test_the_own_session_of_a_deleted_user_is_dead(
    core: corelogin.Core, server: RunningServer, cores: AsyncExitStack
) -> None:
    """Deleting a user ends its sessions: its Core then gets 609, not a 'not found'."""
    donna = await make_user(core, "Donna")
    own = await logged_in(cores, server.url, "Donna")
    admin = await open_core(cores, server.url, admin_key=ADMIN_KEY)
    assert (await admin.users.delete({"user_id": donna.user_id})).result == 1

    event = await own.users.get({"user_id": donna.user_id})

    assert event.status == 609


# -- revoked sessions, every way ---------------------------------------------------------


async def revoke_by_store(server: RunningServer, cores: AsyncExitStack, user_id: str) -> None:
    await server.store.revoke_sessions(user_id)


async def revoke_by_password_change(
    server: RunningServer, cores: AsyncExitStack, user_id: str
) -> None:
    other_session = await logged_in(cores, server.url, "Donna")
    event = await other_session.users.update(
        {"user_id": user_id, "update": {"password": NEW_PASSWORD, "current_password": PASSWORD}}
    )
    assert event.error is None, event


async def revoke_by_deactivation(
    server: RunningServer, cores: AsyncExitStack, user_id: str
) -> None:
    admin = await open_core(cores, server.url, admin_key=ADMIN_KEY)
    event = await admin.users.update({"user_id": user_id, "update": {"active": False}})
    assert event.error is None, event


async def revoke_by_admin_password_change(
    server: RunningServer, cores: AsyncExitStack, user_id: str
) -> None:
    admin = await open_core(cores, server.url, admin_key=ADMIN_KEY)
    event = await admin.users.update({"user_id": user_id, "update": {"password": NEW_PASSWORD}})
    assert event.error is None, event


@pytest.mark.parametrize(
    "revoke",
    [
        revoke_by_store,
        revoke_by_password_change,
        revoke_by_deactivation,
        revoke_by_admin_password_change,
    ],
    ids=["store", "password-changed-elsewhere", "deactivated", "admin-set-password"],
)
async def test_a_revoked_session_gets_609(
    core: corelogin.Core,
    server: RunningServer,
    cores: AsyncExitStack,
    revoke: Callable[[RunningServer, AsyncExitStack, str], Awaitable[None]],
) -> None:
    donna = await make_user(core, "Donna")
    held = await logged_in(cores, server.url, "Donna")
    assert (await held.users.get({"user_id": donna.user_id})).error is None

    await revoke(server, cores, donna.user_id)

    # Each call finds out on its own: the Core then forgets the session and says so once.
    token = held._session_token
    expired: list[str] = []
    stop = corelogin.signals.subscribe(
        corelogin.signals.session_expired,
        lambda sender, event: expired.append(event.name),
        sender=held,
    )
    try:
        for action in EVERY:
            held._session_token = token  # as a Core that has not asked since holds it
            event = await act(held, action, donna.user_id)
            assert event.status == 609, (action, event)
            assert held._session_token is None
            assert held.users.logged_in_user is None
    finally:
        stop()
    assert expired == [ACTIONS[action][0] for action in EVERY]
    assert await server.store.get_user("default", donna.user_id) is not None


async def test_an_absolute_expiry_of_one_second_ends_the_session(
    tmp_path: Path, cores: AsyncExitStack
) -> None:
    """session_absolute_seconds counts from the login, however busy the session is."""
    config = attrs.evolve(server_config_for(tmp_path / "short.sqlite3"), session_absolute_seconds=1)
    async with await start_server(config) as running:
        app_core = await open_core(cores, running.url)
        donna = await make_user(app_core, "Donna")
        held = await logged_in(cores, running.url, "Donna")
        assert held._session_token is not None
        row = session_row(config, held._session_token)
        assert row is not None
        created, _, expires = row
        assert expires == pytest.approx(created + 1)
        # Rewind the login instead of sleeping: the session is now older than a second.
        set_session_expires(config, held._session_token, time.time() - 0.001)

        event = await held.users.get({"user_id": donna.user_id})

        assert event.status == 609


async def test_a_session_used_just_before_its_idle_limit_still_works(
    core: corelogin.Core,
    server: RunningServer,
    server_config: ServerConfig,
    cores: AsyncExitStack,
) -> None:
    donna = await make_user(core, "Donna")
    held = await logged_in(cores, server.url, "Donna")
    assert held._session_token is not None
    set_session_last_seen(
        server_config, held._session_token, time.time() - server_config.session_idle_seconds + 60
    )

    event = await held.users.get({"user_id": donna.user_id})

    assert event.error is None, event


# -- the admin key -----------------------------------------------------------------------


async def test_a_wrong_admin_key_is_logged_without_the_key(
    core: corelogin.Core,
    server: RunningServer,
    cores: AsyncExitStack,
    caplog: pytest.LogCaptureFixture,
) -> None:
    donna = await make_user(core, "Donna")
    wrong = await open_core(cores, server.url, admin_key=WRONG_ADMIN_KEY)

    with caplog.at_level(logging.DEBUG):
        event = await wrong.users.get({"user_id": donna.user_id})

    assert event.status == 610
    warnings = [
        r for r in caplog.records if r.name == "corelogin.server" and r.levelno == logging.WARNING
    ]
    assert len(warnings) == 1
    assert "admin key" in warnings[0].getMessage()
    for record in caplog.records:
        assert WRONG_ADMIN_KEY not in record.getMessage()
        assert ADMIN_KEY not in record.getMessage()
    assert WRONG_ADMIN_KEY not in caplog.text
    assert WRONG_ADMIN_KEY not in (event.error or "")


async def test_a_wrong_admin_key_is_refused_even_with_a_valid_session(
    core: corelogin.Core, server: RunningServer, cores: AsyncExitStack
) -> None:
    """A wrong admin key is never ignored in favour of the session it came with."""
    donna = await make_user(core, "Donna")
    both = await open_core(cores, server.url, admin_key=WRONG_ADMIN_KEY)
    login = await both.users.login({"username": "Donna", "password": PASSWORD})
    assert login.error is None

    event = await both.users.get({"user_id": donna.user_id})

    assert event.status == 610


async def test_the_admin_key_acts_even_with_another_users_session(
    core: corelogin.Core, server: RunningServer, cores: AsyncExitStack
) -> None:
    donna = await make_user(core, "Donna")
    await make_user(core, "Other")
    admin = await open_core(cores, server.url, admin_key=ADMIN_KEY)
    assert (await admin.users.login({"username": "Other", "password": PASSWORD})).error is None

    event = await admin.users.update({"user_id": donna.user_id, "update": {"group": "mods"}})

    assert event.error is None, event
    assert event.result.group == "mods"


@pytest.mark.parametrize("action", EVERY)
async def test_a_server_without_an_admin_key_refuses_every_admin_call(
    tmp_path: Path, cores: AsyncExitStack, action: str
) -> None:
    config = server_config_for(tmp_path / "no-admin.sqlite3")
    assert config.admin_key is None
    async with await start_server(config) as running:
        donna = await make_user(await open_core(cores, running.url), "Donna")
        admin = await open_core(cores, running.url, admin_key=ADMIN_KEY)

        event = await act(admin, action, donna.user_id)

        assert event.status == 610
        stored = await running.store.get_user("default", donna.user_id)
        assert stored is not None
        assert stored.group is None
        assert stored.active is True
        assert stored.extra is None


async def test_an_empty_admin_key_in_the_configuration_grants_nothing(
    core: corelogin.Core, tmp_path: Path
) -> None:
    try:
        config = attrs.evolve(server_config_for(tmp_path / "empty.sqlite3"), admin_key="")
    except ValueError:
        refused = True  # refused at start-up: the right fix too
    else:
        refused = False
    if not refused:
        async with (
            await start_server(config) as running,
            aiohttp.ClientSession() as http,
        ):
            async with corelogin.init(running.url, APP_KEY) as app_core:
                donna = await make_user(app_core, "Donna")
            async with http.post(
                running.url + CALLS["get"].path,
                json={"scope": "default", "user_id": donna.user_id},
                headers={APP_KEY_HEADER: APP_KEY, ADMIN_KEY_HEADER: ""},
            ) as response:
                body = await response.json()
            refused = body.get("status") == 610
    assert refused


# -- raw headers -------------------------------------------------------------------------


async def post_raw(
    url: str, call: str, body: dict[str, Any], headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            url + CALLS[call].path, json=body, headers={APP_KEY_HEADER: APP_KEY, **headers}
        ) as response,
    ):
        return response.status, await response.json()


@pytest.mark.parametrize(
    "authorization",
    ["Basic x", "Bearer ", "Bearer", "", "Token abc", "Bearer not-a-token-we-gave", "Bearer\tx"],
    ids=["basic", "bearer-empty", "bearer-alone", "empty", "other-scheme", "unknown", "tab"],
)
async def test_a_malformed_or_unknown_authorization_gets_609(
    core: corelogin.Core, server: RunningServer, authorization: str
) -> None:
    donna = await make_user(core, "Donna")

    status, body = await post_raw(
        server.url,
        "get",
        {"scope": "default", "user_id": donna.user_id},
        {"Authorization": authorization},
    )

    assert (status, body["status"]) == (401, 609)
    assert "result" not in body


async def test_the_bearer_scheme_is_case_insensitive(
    core: corelogin.Core, server: RunningServer, cores: AsyncExitStack
) -> None:
    donna = await make_user(core, "Donna")
    held = await logged_in(cores, server.url, "Donna")

    status, body = await post_raw(
        server.url,
        "get",
        {"scope": "default", "user_id": donna.user_id},
        {"Authorization": f"bEaReR {held._session_token}"},
    )

    assert status == 200
    assert body["result"]["user_id"] == donna.user_id


async def test_no_session_gets_610_with_http_403(
    core: corelogin.Core, server: RunningServer
) -> None:
    donna = await make_user(core, "Donna")

    status, body = await post_raw(
        server.url, "delete", {"scope": "default", "user_id": donna.user_id}, {}
    )

    assert (status, body["status"]) == (403, 610)
    assert await server.store.get_user("default", donna.user_id) is not None


# -- scopes --------------------------------------------------------------------------------


@pytest.mark.parametrize("action", EVERY)
async def test_a_session_of_one_scope_cannot_act_in_another(
    core: corelogin.Core, server: RunningServer, cores: AsyncExitStack, action: str
) -> None:
    donna = await make_user(core, "Donna")
    held = await logged_in(cores, server.url, "Donna")
    elsewhere = await open_core(cores, server.url, scope="B")
    elsewhere._session_token = held._session_token
    before = await server.store.get_user("default", donna.user_id)

    event = await act(elsewhere, action, donna.user_id)

    assert event.status == 610, event
    assert await server.store.get_user("default", donna.user_id) == before


async def test_a_session_of_one_scope_cannot_act_in_another_raw(
    core: corelogin.Core, server: RunningServer, cores: AsyncExitStack
) -> None:
    donna = await make_user(core, "Donna")
    held = await logged_in(cores, server.url, "Donna")
    headers = {"Authorization": f"Bearer {held._session_token}"}

    same = await post_raw(
        server.url, "get", {"scope": "default", "user_id": donna.user_id}, headers
    )
    other = await post_raw(server.url, "get", {"scope": "B", "user_id": donna.user_id}, headers)

    assert same[0] == 200
    assert (other[0], other[1]["status"]) == (403, 610)


async def test_the_admin_key_acts_only_on_users_of_its_scope(
    core: corelogin.Core, server: RunningServer, cores: AsyncExitStack
) -> None:
    donna = await make_user(core, "Donna")
    admin_b = await open_core(cores, server.url, scope="B", admin_key=ADMIN_KEY)

    got = await admin_b.users.get({"user_id": donna.user_id})
    deleted = await admin_b.users.delete({"user_id": donna.user_id})

    assert got.status == 604
    assert deleted.result == 0
    assert await server.store.get_user("default", donna.user_id) is not None


# -- last use --------------------------------------------------------------------------


async def test_last_seen_is_written_at_most_once_a_minute(
    core: corelogin.Core,
    server: RunningServer,
    server_config: ServerConfig,
    cores: AsyncExitStack,
) -> None:
    donna = await make_user(core, "Donna")
    held = await logged_in(cores, server.url, "Donna")
    token = held._session_token
    assert token is not None
    fresh = session_row(server_config, token)
    assert fresh is not None
    assert fresh[1] == fresh[0]  # a new session: last seen when made

    for _ in range(2):
        assert (await held.users.get({"user_id": donna.user_id})).error is None
    assert session_row(server_config, token) == fresh  # used within the minute: not written

    two_minutes_ago = time.time() - 120
    set_session_last_seen(server_config, token, two_minutes_ago)
    before = time.time()
    assert (await held.users.get({"user_id": donna.user_id})).error is None
    touched = session_row(server_config, token)
    assert touched is not None
    assert touched[1] >= before
    assert touched[1] <= time.time()
    assert (await held.users.get({"user_id": donna.user_id})).error is None
    assert session_row(server_config, token) == touched  # written once, not on every call


def shift_session_clock(config: ServerConfig, token: str, seconds: float) -> None:
    """Let ``seconds`` pass for a session: every time it holds moves that far into the past."""
    db = sqlite3.connect(db_path(config), timeout=10)
    try:
        with db:
            db.execute(
                "UPDATE sessions SET created = created - ?, last_seen = last_seen - ?, "
                "expires = expires - ? WHERE token_hash = ?",
                (seconds, seconds, seconds, hash_token(token)),
            )
    finally:
        db.close()


async def test_a_session_in_use_outlives_a_short_idle_limit(
    tmp_path: Path, cores: AsyncExitStack
) -> None:
    config = attrs.evolve(server_config_for(tmp_path / "idle.sqlite3"), session_idle_seconds=30)
    async with await start_server(config) as running:
        donna = await make_user(await open_core(cores, running.url), "Donna")
        held = await logged_in(cores, running.url, "Donna")
        assert held._session_token is not None
        statuses = []
        for _ in range(3):  # used every 20 s: never 30 s idle
            shift_session_clock(config, held._session_token, 20)
            statuses.append((await held.users.get({"user_id": donna.user_id})).status)

        assert statuses == [None, None, None]
