"""users.login against the real server: username and email logins, the login object,
identical failures for unknown users and wrong passwords, and login events."""

from __future__ import annotations

import hashlib
import sqlite3
from typing import Any

import argon2
import pytest

import corelogin
from corelogin.server import RunningServer
from corelogin.server.context import HASHER
from tests.helpers import APP_KEY, PASSWORD, make_user

LOGIN_KEYS = {
    "active",
    "confirmation",
    "email",
    "group",
    "extra",
    "oauth",
    "scope",
    "user_id",
    "username",
    "validated",
}


async def test_login_by_username_gives_the_login_object(core: corelogin.Core) -> None:
    user = await make_user(core, "Donna", email="donna@home.com", group="players", extra={"lv": 3})

    event = await core.users.login({"username": "Donna", "password": PASSWORD})

    assert event.error is None
    assert event.status is None
    assert event.name == "login"
    login = event.result
    assert isinstance(login, corelogin.Login)
    assert set(login.keys()) == LOGIN_KEYS
    assert login.to_dict() == {
        "active": True,
        "confirmation": None,
        "email": "donna@home.com",
        "group": "players",
        "extra": {"lv": 3},
        "oauth": None,
        "scope": "default",
        "user_id": user.user_id,
        "username": "Donna",
        "validated": True,
    }
    assert event["result"]["user_id"] == user.user_id
    assert core.users.logged_in_user == login


async def test_login_by_email_ignores_letter_case(core: corelogin.Core) -> None:
    user = await make_user(core, "Tina", email="Tina@Home.com")

    event = await core.users.login({"email": "tINA@home.COM", "password": PASSWORD})

    assert event.error is None, event
    assert event.result.user_id == user.user_id
    assert event.result.email == "Tina@Home.com"


async def test_login_by_username_ignores_letter_case(core: corelogin.Core) -> None:
    user = await make_user(core, "Donna")

    event = await core.users.login({"username": "DONNA", "password": PASSWORD})

    assert event.result.user_id == user.user_id
    assert event.result.username == "Donna"


async def test_users_of_another_scope_cannot_log_in(
    core: corelogin.Core, server: RunningServer
) -> None:
    await make_user(core, "Donna")
    async with corelogin.init(server.url, APP_KEY, scope="other-game") as other:
        event = await other.users.login({"username": "Donna", "password": PASSWORD})
    assert event.status == 603


async def test_inactive_user_logs_in_not_validated_and_no_login_event(
    core: corelogin.Core, server: RunningServer
) -> None:
    user = await make_user(core, "Sleepy")
    await server.store.set_active(user.user_id, False)

    event = await core.users.login({"username": "Sleepy", "password": PASSWORD})

    assert event.error is None, event
    assert event.result.active is False
    assert event.result.validated is False
    assert await server.store.login_events(user.user_id) == []


async def test_active_login_writes_one_login_event_with_address_and_agent(
    core: corelogin.Core, server: RunningServer
) -> None:
    user = await make_user(core, "Donna")

    await core.users.login({"username": "Donna", "password": PASSWORD})
    await core.users.login({"username": "Donna", "password": "not the password"})

    events = await server.store.login_events(user.user_id)
    assert len(events) == 1
    assert events[0].remote == "127.0.0.1"
    assert events[0].user_agent is not None
    assert "aiohttp" in events[0].user_agent.lower()


@pytest.fixture
def verify_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts argon2 verifications made by the server."""
    calls: list[str] = []
    original = argon2.PasswordHasher.verify

    def counting(self: argon2.PasswordHasher, hash: str, password: str) -> Any:
        calls.append(hash)
        return original(self, hash, password)

    monkeypatch.setattr(argon2.PasswordHasher, "verify", counting)
    return calls


async def test_unknown_user_and_wrong_password_are_indistinguishable(
    core: corelogin.Core, verify_calls: list[str]
) -> None:
    await make_user(core, "Donna")

    wrong = await core.users.login({"username": "Donna", "password": "wrong password"})
    assert len(verify_calls) == 1
    unknown = await core.users.login({"username": "Nobody", "password": "wrong password"})
    assert len(verify_calls) == 2
    unknown_email = await core.users.login({"email": "no@body.com", "password": "wrong password"})
    assert len(verify_calls) == 3

    assert wrong.status == unknown.status == unknown_email.status == 603
    assert wrong.error == unknown.error == unknown_email.error
    assert wrong.result is unknown.result is None


async def test_login_opens_a_session_stored_only_by_its_hash(
    core: corelogin.Core, server: RunningServer, server_config: Any
) -> None:
    user = await make_user(core, "Donna")
    await core.users.login({"username": "Donna", "password": PASSWORD})

    token = core._session_token
    assert token is not None
    assert len(token) >= 43
    assert token not in repr(core)
    assert token not in repr(core.users.logged_in_user)
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert await server.store.session_user(digest, now=0) == user.user_id
    db = sqlite3.connect(server_config.db.removeprefix("sqlite:///"))
    rows = db.execute("SELECT * FROM sessions").fetchall()
    db.close()
    assert rows
    assert all(token not in map(str, row) for row in rows)


async def test_login_rehashes_a_password_made_with_old_parameters(
    core: corelogin.Core, server: RunningServer
) -> None:
    user = await make_user(core, "Donna")
    weak = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
    await server.store.set_password_hash(user.user_id, weak)

    event = await core.users.login({"username": "Donna", "password": PASSWORD})

    assert event.error is None
    stored = await server.store.find_user("default", username="Donna")
    assert stored is not None
    assert stored.password_hash != weak
    assert "m=19456,t=2,p=1" in stored.password_hash
    assert server.app[HASHER].needs_rehash(stored.password_hash) is False


async def test_wrong_app_key_gives_611(server: RunningServer) -> None:
    async with corelogin.init(server.url, "not-the-key") as core:
        event = await core.users.login({"username": "Donna", "password": PASSWORD})
    assert event.status == 611
    assert event.error == "app key missing or wrong"


async def test_a_login_name_with_a_control_character_is_refused_as_a_bad_parameter(
    core: corelogin.Core,
) -> None:
    """No user can have one (601 at create), and PostgreSQL cannot even compare a NUL."""
    event = await core.users.login({"username": "Don\x00na", "password": "whatever it is"})
    assert (event.status, event.result) == (801, None)
