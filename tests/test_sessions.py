"""Sessions against the real server: stay logged in and restore (also from another process),
revokes seen as 609 and session_expired, logout with and without the server, one-time auth
tokens, and a session store that fails."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import stat
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import attrs
import pytest

import corelogin
from corelogin import signals
from corelogin.server import RunningServer, ServerConfig, start_server
from corelogin.users import Users
from tests.helpers import APP_KEY, PASSWORD, make_user, server_config_for

ADMIN_KEY = "sessions-admin-key-0123456789"
NEW_PASSWORD = "a brand new password 42"


@pytest.fixture
def server_config(tmp_path: Path) -> ServerConfig:
    """The shared `server` fixture's config, with an admin key."""
    return attrs.evolve(server_config_for(tmp_path / "corelogin.sqlite3"), admin_key=ADMIN_KEY)


@pytest.fixture
async def cores() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "s.json"


async def open_core(
    stack: AsyncExitStack,
    url: str,
    store: Any,
    *,
    scope: str = "default",
    admin_key: str | None = None,
    retries: int = 2,
) -> corelogin.Core:
    return await stack.enter_async_context(
        corelogin.init(
            url, APP_KEY, scope=scope, admin_key=admin_key, retries=retries, session_store=store
        )
    )


def read(path: Path) -> str:
    return path.read_text()


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def names_in(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir()]


def exists(path: Path) -> bool:
    return path.exists()


def key_of(core: corelogin.Core) -> str:
    return f"{core.server.rstrip('/')}|{core.scope}"


class Received:
    """Records what one signal sent for one sender (connected strongly, disconnected after)."""

    def __init__(self) -> None:
        self.events: list[corelogin.Event] = []

    def __call__(self, sender: Any, event: corelogin.Event, **_: Any) -> None:
        self.events.append(event)


@pytest.fixture
def received() -> Iterator[Callable[[Any, corelogin.Core], Received]]:
    undo: list[Callable[[], None]] = []

    def connect(signal: Any, sender: corelogin.Core) -> Received:
        rec = Received()
        undo.append(signals.subscribe(signal, rec, sender=sender))
        return rec

    yield connect
    for disconnect in undo:
        disconnect()


async def stay_logged_in(core: corelogin.Core, username: str = "Donna") -> str:
    """Log ``username`` in with stay_logged_in; the session token the Core now holds."""
    event = await core.users.login(
        {"username": username, "password": PASSWORD, "stay_logged_in": True}
    )
    assert event.error is None, event
    token = core._session_token
    assert isinstance(token, str)
    assert token
    return token


# -- 1. stay logged in, restore ---------------------------------------------------------------


async def test_stay_logged_in_restores_in_a_new_core_and_another_process(
    server: RunningServer,
    cores: AsyncExitStack,
    store_path: Path,
    received: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    first_store = corelogin.FileSessionStore(store_path)
    first = await open_core(cores, server.url, first_store)
    donna = await make_user(first, "Donna")
    token = await stay_logged_in(first)

    assert mode_of(store_path) == 0o600
    assert token in read(store_path)
    assert all(token not in name for name in names_in(store_path.parent))

    store = corelogin.FileSessionStore(store_path)
    again = await open_core(cores, server.url, store)
    restored = received(signals.session_restored, again)
    assert again.users.logged_in_user is None
    assert again.users.has_saved_login is True

    event = await again.users.restore()

    assert event.error is None, event
    assert isinstance(event.result, corelogin.Login)
    assert event.result.user_id == donna.user_id
    assert event.result.username == "Donna"
    assert again.users.logged_in_user == event.result
    assert again._session_token == token
    assert [e.name for e in restored.events] == ["restore"]
    valid = await again.users.is_valid_login()
    assert valid.error is None
    assert valid.result is True

    for text in (repr(again), repr(first), repr(store), repr(first_store), repr(event)):
        assert token not in text
    assert token not in str(event)
    assert token not in caplog.text
    assert all(token not in r.getMessage() for r in caplog.records)

    # Another process, frame mode, the same file and server.
    script = (
        "import json, sys, corelogin\n"
        "core = corelogin.init(sys.argv[1], sys.argv[2],"
        " session_store=corelogin.FileSessionStore(sys.argv[3]))\n"
        "event = core.users.restore().result(10)\n"
        "print(json.dumps({'status': event.status, 'user_id': event.result and"
        " event.result.user_id, 'deliver': core.deliver}))\n"
        "core.close()\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        server.url,
        APP_KEY,
        str(store_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert json.loads(out) == {"status": None, "user_id": donna.user_id, "deliver": "frame"}
    assert token not in out.decode() + err.decode()


async def test_a_login_without_stay_logged_in_keeps_what_is_saved(
    server: RunningServer, cores: AsyncExitStack, store_path: Path
) -> None:
    core = await open_core(cores, server.url, corelogin.FileSessionStore(store_path))
    await make_user(core, "Donna")
    tina = await make_user(core, "Tina")
    saved = await stay_logged_in(core, "Donna")

    plain = await core.users.login({"username": "Tina", "password": PASSWORD})
    explicit = await core.users.login(
        {"username": "Tina", "password": PASSWORD, "stay_logged_in": False}
    )

    assert plain.error is None
    assert explicit.error is None
    assert core.users.logged_in_user is not None
    assert core.users.logged_in_user.user_id == tina.user_id
    assert core._session_token not in (None, saved)
    assert core._session_token not in read(store_path)
    assert corelogin.FileSessionStore(store_path).load(key_of(core)) == saved


# -- 3. revoked on the server -----------------------------------------------------------------


async def revoke_by_logout_elsewhere(
    cores: AsyncExitStack, url: str, user_id: str, token: str
) -> None:
    """Another Core (its own store) holding the same session logs out."""
    elsewhere = corelogin.MemorySessionStore()
    other = await open_core(cores, url, elsewhere)
    elsewhere.save(key_of(other), token)
    assert (await other.users.restore()).error is None
    event = await other.users.logout()
    assert event.error is None, event
    assert event.result is True


async def revoke_by_password_change(
    cores: AsyncExitStack, url: str, user_id: str, token: str
) -> None:
    other = await open_core(cores, url, corelogin.MemorySessionStore())
    assert (await other.users.login({"username": "Donna", "password": PASSWORD})).error is None
    event = await other.users.update(
        {"user_id": user_id, "update": {"password": NEW_PASSWORD, "current_password": PASSWORD}}
    )
    assert event.error is None, event


async def revoke_by_deactivation(cores: AsyncExitStack, url: str, user_id: str, token: str) -> None:
    admin = await open_core(cores, url, corelogin.MemorySessionStore(), admin_key=ADMIN_KEY)
    event = await admin.users.update({"user_id": user_id, "update": {"active": False}})
    assert event.error is None, event


Revoke = Callable[[AsyncExitStack, str, str, str], Awaitable[None]]


@pytest.mark.parametrize(
    "revoke",
    [revoke_by_logout_elsewhere, revoke_by_password_change, revoke_by_deactivation],
    ids=["logout-elsewhere", "password-changed", "deactivated"],
)
@pytest.mark.parametrize("holder", ["same-core", "next-start"])
async def test_restore_of_a_revoked_session_gives_609_and_forgets_it(
    server: RunningServer,
    cores: AsyncExitStack,
    store_path: Path,
    received: Any,
    revoke: Revoke,
    holder: str,
) -> None:
    core = await open_core(cores, server.url, corelogin.FileSessionStore(store_path))
    donna = await make_user(core, "Donna")
    token = await stay_logged_in(core)
    if holder == "next-start":
        core = await open_core(cores, server.url, corelogin.FileSessionStore(store_path))
        assert core.users.logged_in_user is None
    expired = received(signals.session_expired, core)
    restored = received(signals.session_restored, core)

    await revoke(cores, server.url, donna.user_id, token)
    event = await core.users.restore()

    assert event.status == 609, event
    assert event.result is None
    assert core.users.has_saved_login is False
    assert token not in read(store_path)
    assert len(expired.events) == 1
    assert expired.events[0].status == 609
    assert restored.events == []
    assert core.users.logged_in_user is None
    assert core._session_token is None
    # Nothing saved any more: restore is answered 804 and nothing more is signalled.
    assert (await core.users.restore()).status == 804
    assert len(expired.events) == 1


# -- 4. any call answered 609 -----------------------------------------------------------------


async def test_a_609_on_any_call_expires_the_session_once_then_610(
    server: RunningServer, cores: AsyncExitStack, received: Any
) -> None:
    store = corelogin.MemorySessionStore()
    core = await open_core(cores, server.url, store)
    donna = await make_user(core, "Donna")
    await stay_logged_in(core)
    assert (await core.users.get({"user_id": donna.user_id})).error is None
    expired = received(signals.session_expired, core)
    await revoke_by_deactivation(cores, server.url, donna.user_id, "")

    first = await core.users.get({"user_id": donna.user_id})

    assert first.status == 609, first
    assert len(expired.events) == 1
    assert expired.events[0] is first
    assert core.users.logged_in_user is None
    assert core.users.has_saved_login is False
    assert store.load(key_of(core)) is None

    second = await core.users.get({"user_id": donna.user_id})

    assert second.status == 610, second
    assert len(expired.events) == 1


# -- 5. logout --------------------------------------------------------------------------------


async def test_logout_with_the_server_stopped_clears_everything_and_reports_815(
    server_config: ServerConfig, cores: AsyncExitStack, store_path: Path, received: Any
) -> None:
    running = await start_server(server_config)
    try:
        core = await open_core(
            cores, running.url, corelogin.FileSessionStore(store_path), retries=0
        )
        await make_user(core, "Donna")
        token = await stay_logged_in(core)
    finally:
        await running.stop()
    logged_out = received(signals.logout, core)

    event = await core.users.logout()

    assert event.status == 815, event
    assert core.users.logged_in_user is None
    assert core.users.has_saved_login is False
    assert token not in read(store_path)
    assert [e.status for e in logged_out.events] == [815]


async def test_logout_after_a_restore_with_the_server_stopped_reports_815(
    server_config: ServerConfig, cores: AsyncExitStack, store_path: Path, received: Any
) -> None:
    running = await start_server(server_config)
    try:
        first = await open_core(cores, running.url, corelogin.FileSessionStore(store_path))
        await make_user(first, "Donna")
        token = await stay_logged_in(first)
        core = await open_core(
            cores, running.url, corelogin.FileSessionStore(store_path), retries=0
        )
        assert (await core.users.restore()).error is None
    finally:
        await running.stop()
    logged_out = received(signals.logout, core)

    event = await core.users.logout()

    assert event.status == 815, event
    assert core.users.logged_in_user is None
    assert core.users.has_saved_login is False
    assert token not in read(store_path)
    assert len(logged_out.events) == 1


async def test_logout_revokes_the_session_on_the_server(
    server: RunningServer, cores: AsyncExitStack, store_path: Path, received: Any
) -> None:
    core = await open_core(cores, server.url, corelogin.FileSessionStore(store_path))
    await make_user(core, "Donna")
    token = await stay_logged_in(core)
    logged_out = received(signals.logout, core)

    event = await core.users.logout()

    assert event.error is None, event
    assert event.result is True
    assert core.users.logged_in_user is None
    assert core.users.has_saved_login is False
    assert token not in read(store_path)
    assert [e.result for e in logged_out.events] == [True]
    elsewhere = corelogin.MemorySessionStore()
    other = await open_core(cores, server.url, elsewhere)
    elsewhere.save(key_of(other), token)
    assert (await other.users.restore()).status == 609
    assert (await other.users.is_valid_login()).result is False


async def test_logout_keeping_the_saved_copy(
    server: RunningServer, cores: AsyncExitStack, store_path: Path
) -> None:
    core = await open_core(cores, server.url, corelogin.FileSessionStore(store_path))
    await make_user(core, "Donna")
    token = await stay_logged_in(core)

    event = await core.users.logout(clear_saved=False)

    assert event.error is None, event
    assert event.result is True
    assert core.users.logged_in_user is None
    assert core.users.has_saved_login is True
    assert token in read(store_path)


async def test_logout_without_a_session_is_true_without_the_network(
    nowhere: str, cores: AsyncExitStack, received: Any
) -> None:
    core = await open_core(cores, nowhere, corelogin.MemorySessionStore())
    logged_out = received(signals.logout, core)

    event = await core.users.logout()

    assert event.error is None, event
    assert event.result is True
    assert len(logged_out.events) == 1


# -- 6. nothing saved -------------------------------------------------------------------------


async def test_restore_with_nothing_saved_is_804_and_is_valid_login_false_offline(
    nowhere: str, cores: AsyncExitStack, store_path: Path
) -> None:
    core = await open_core(cores, nowhere, corelogin.FileSessionStore(store_path))
    assert core.users.has_saved_login is False

    restore = await core.users.restore()
    valid = await core.users.is_valid_login()

    assert restore.status == 804, restore
    assert valid.error is None, valid
    assert valid.result is False
    assert not exists(store_path)


# -- 7. one-time auth tokens ------------------------------------------------------------------


def session_rows(db: Path, user_id: str) -> int:
    with sqlite3.connect(db) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM sessions WHERE user_id = ?", (user_id,)
        ).fetchone()
    return int(count)


async def mint(cores: AsyncExitStack, url: str, user_id: str) -> str:
    admin = await open_core(cores, url, corelogin.MemorySessionStore(), admin_key=ADMIN_KEY)
    event = await admin.users.create_auth_token({"user_id": user_id})
    assert event.error is None, event
    return str(event.result["auth_token"])


async def test_create_auth_token_needs_the_admin_key(
    server: RunningServer, cores: AsyncExitStack
) -> None:
    anonymous = await open_core(cores, server.url, corelogin.MemorySessionStore())
    donna = await make_user(anonymous, "Donna")
    own = await open_core(cores, server.url, corelogin.MemorySessionStore())
    await stay_logged_in(own)
    admin = await open_core(cores, server.url, corelogin.MemorySessionStore(), admin_key=ADMIN_KEY)

    without = await anonymous.users.create_auth_token({"user_id": donna.user_id})
    with_session = await own.users.create_auth_token({"user_id": donna.user_id})
    unknown = await admin.users.create_auth_token({"user_id": "no-such-user"})
    before = time.time()
    minted = await admin.users.createAuthToken({"user_id": donna.user_id})

    assert without.status == 610, without
    assert with_session.status == 610, with_session
    assert unknown.status == 604, unknown
    assert minted.error is None, minted
    assert set(minted.result) == {"auth_token", "expires"}
    assert isinstance(minted.result["auth_token"], str)
    assert minted.result["auth_token"]
    assert before + 299 <= minted.result["expires"] <= time.time() + 301


async def test_an_auth_token_logs_in_once(
    server: RunningServer, cores: AsyncExitStack, received: Any
) -> None:
    core = await open_core(cores, server.url, corelogin.MemorySessionStore())
    donna = await make_user(core, "Donna")
    token = await mint(cores, server.url, donna.user_id)
    logins = received(signals.login, core)

    event = await core.users.loginWithAuthToken({"auth_token": token})

    assert event.error is None, event
    assert isinstance(event.result, corelogin.Login)
    assert event.result.user_id == donna.user_id
    assert core.users.logged_in_user == event.result
    assert len(logins.events) == 1
    own = await core.users.get({"user_id": donna.user_id})
    assert own.error is None
    assert own.result.user_id == donna.user_id
    assert (await core.users.isValidLogin()).result is True

    again = await core.users.login_with_auth_token({"auth_token": token})
    assert again.status == 615, again


async def test_fifty_concurrent_uses_of_one_auth_token_open_one_session(
    server: RunningServer, cores: AsyncExitStack, tmp_path: Path
) -> None:
    core = await open_core(cores, server.url, corelogin.MemorySessionStore())
    donna = await make_user(core, "Donna")
    token = await mint(cores, server.url, donna.user_id)
    assert session_rows(tmp_path / "corelogin.sqlite3", donna.user_id) == 0

    events = await asyncio.gather(
        *(core.users.login_with_auth_token({"auth_token": token}) for _ in range(50))
    )

    statuses = [e.status for e in events]
    assert statuses.count(None) == 1, statuses
    assert statuses.count(615) == 49, statuses
    assert session_rows(tmp_path / "corelogin.sqlite3", donna.user_id) == 1


async def test_an_expired_auth_token_gets_615(
    server_config: ServerConfig, cores: AsyncExitStack
) -> None:
    config = attrs.evolve(server_config, auth_token_ttl_seconds=1)
    async with await start_server(config) as running:
        core = await open_core(cores, running.url, corelogin.MemorySessionStore())
        donna = await make_user(core, "Donna")
        token = await mint(cores, running.url, donna.user_id)
        await asyncio.sleep(1.1)

        event = await core.users.login_with_auth_token({"auth_token": token})

        assert event.status == 615, event
        assert core.users.logged_in_user is None


async def test_an_auth_token_of_another_scope_gets_615(
    server: RunningServer, cores: AsyncExitStack
) -> None:
    core = await open_core(cores, server.url, corelogin.MemorySessionStore())
    donna = await make_user(core, "Donna")
    token = await mint(cores, server.url, donna.user_id)
    other_scope = await open_core(cores, server.url, corelogin.MemorySessionStore(), scope="b")

    event = await other_scope.users.login_with_auth_token({"auth_token": token})

    assert event.status == 615, event
    assert other_scope.users.logged_in_user is None


async def test_login_with_auth_token_can_stay_logged_in(
    server: RunningServer, cores: AsyncExitStack, store_path: Path
) -> None:
    core = await open_core(cores, server.url, corelogin.FileSessionStore(store_path))
    donna = await make_user(core, "Donna")
    token = await mint(cores, server.url, donna.user_id)

    event = await core.users.login_with_auth_token({"auth_token": token, "stay_logged_in": True})

    assert event.error is None, event
    session = core._session_token
    assert session is not None
    assert session in read(store_path)
    after = await open_core(cores, server.url, corelogin.FileSessionStore(store_path))
    restored = await after.users.restore()
    assert restored.error is None
    assert restored.result.user_id == donna.user_id


def test_the_lua_names_of_the_session_calls_are_the_same_functions() -> None:
    assert Users.loginWithAuthToken is Users.login_with_auth_token
    assert Users.createAuthToken is Users.create_auth_token
    assert Users.isValidLogin is Users.is_valid_login


# -- 8. a store that fails --------------------------------------------------------------------


class BrokenStore:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def load(self, key: str) -> str | None:
        self.calls.append("load")
        raise OSError("disk on fire")

    def save(self, key: str, token: str) -> None:
        self.calls.append("save")
        raise OSError("disk on fire")

    def clear(self, key: str) -> None:
        self.calls.append("clear")
        raise OSError("disk on fire")


async def test_a_store_that_raises_never_breaks_login_or_logout(
    server: RunningServer, cores: AsyncExitStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store = BrokenStore()
    core = await open_core(cores, server.url, store)
    await make_user(core, "Donna")

    login = await core.users.login(
        {"username": "Donna", "password": PASSWORD, "stay_logged_in": True}
    )
    assert login.error is None, login
    assert core.users.logged_in_user is not None
    assert "save" in store.calls
    assert core.users.has_saved_login is False
    restore = await core.users.restore()
    assert restore.status == 804, restore
    logout = await core.users.logout()
    assert logout.error is None, logout
    assert logout.result is True
    assert core.users.logged_in_user is None

    failures = [r for r in caplog.records if "session store" in r.getMessage()]
    assert any("save()" in r.getMessage() for r in failures)
    assert any("load()" in r.getMessage() for r in failures)
    assert all(r.levelno >= logging.WARNING for r in failures)


async def test_a_try_from_another_scope_does_not_use_up_the_auth_token(
    server: RunningServer, cores: AsyncExitStack
) -> None:
    core = await open_core(cores, server.url, corelogin.MemorySessionStore())
    donna = await make_user(core, "Donna")
    token = await mint(cores, server.url, donna.user_id)
    other_scope = await open_core(cores, server.url, corelogin.MemorySessionStore(), scope="b")
    assert (await other_scope.users.login_with_auth_token({"auth_token": token})).status == 615

    event = await core.users.login_with_auth_token({"auth_token": token})

    assert event.error is None, event
    assert event.result.user_id == donna.user_id


async def test_logout_of_a_session_the_server_ended_already_is_true(
    server: RunningServer, cores: AsyncExitStack, store_path: Path
) -> None:
    """Either way the session is over: what the user asked for holds."""
    core = await open_core(cores, server.url, corelogin.FileSessionStore(store_path))
    await make_user(core, "Donna")
    token = await stay_logged_in(core)
    await revoke_by_logout_elsewhere(cores, server.url, "", token)

    event = await core.users.logout()

    assert event.result is True, event
    assert core.users.logged_in_user is None
    assert core.users.has_saved_login is False


async def test_is_valid_login_false_for_a_dead_saved_session_forgets_it_once(
    server: RunningServer,
    cores: AsyncExitStack,
    store_path: Path,
    received: Callable[[Any, corelogin.Core], Received],
) -> None:
    first = await open_core(cores, server.url, corelogin.FileSessionStore(store_path))
    await make_user(first, "Donna")
    token = await stay_logged_in(first)
    await revoke_by_logout_elsewhere(cores, server.url, "", token)
    later = await open_core(cores, server.url, corelogin.FileSessionStore(store_path))
    expired = received(signals.session_expired, later)

    valid = await later.users.is_valid_login()
    again = await later.users.is_valid_login()

    assert (valid.result, again.result) == (False, False)
    assert later.users.has_saved_login is False
    assert token not in read(store_path)
    assert len(expired.events) == 1
