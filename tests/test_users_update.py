"""users.get, users.update and users.delete against the real server: what they answer, what
they change (extra merged key by key, usernames, emails, passwords, group and active), which
sessions they end, the signals they send and how they behave when called concurrently."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest

import corelogin
from corelogin import signals
from corelogin.server import RunningServer, ServerConfig
from corelogin.users import Users
from corelogin.wire import APP_KEY_HEADER, CALLS, EXTRA_MAX_BYTES
from tests.helpers import APP_KEY, PASSWORD, make_user, server_config_for

ADMIN_KEY = "test-admin-key-0123456789"
NEW_PASSWORD = "another fine horse"


@pytest.fixture
def server_config(tmp_path: Path) -> ServerConfig:
    """The shared test server, with an admin key."""
    return attrs.evolve(server_config_for(tmp_path / "corelogin.sqlite3"), admin_key=ADMIN_KEY)


@pytest.fixture
async def admin(server: RunningServer) -> AsyncIterator[corelogin.Core]:
    """A Core of trusted back-end code, with the admin key."""
    async with corelogin.init(server.url, APP_KEY, admin_key=ADMIN_KEY) as client:
        yield client


@pytest.fixture
async def other(server: RunningServer) -> AsyncIterator[corelogin.Core]:
    """A second Core, e.g. the same user on another device."""
    async with corelogin.init(server.url, APP_KEY) as client:
        yield client


async def login(
    core: corelogin.Core, password: str = PASSWORD, username: str = "Donna"
) -> corelogin.Event:
    return await core.users.login({"username": username, "password": password})


async def donna_logged_in(core: corelogin.Core, **params: Any) -> corelogin.User:
    """Make Donna and log ``core`` in as her."""
    user = await make_user(core, "Donna", **params)
    event = await login(core)
    assert event.error is None, event
    return user


async def update(core: corelogin.Core, user_id: str, **changes: Any) -> corelogin.Event:
    return await core.users.update({"user_id": user_id, "update": changes})


def db_rows(config: ServerConfig, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Read the server's SQLite file directly, read-only."""
    path = config.db.removeprefix("sqlite:///")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


# -- get -----------------------------------------------------------------------------------


async def test_get_gives_a_user_their_own_record(core: corelogin.Core) -> None:
    created = await donna_logged_in(
        core, email="donna@home.com", group="players", extra={"lv": 3, "vip": True}
    )

    event = await core.users.get({"user_id": created.user_id})

    assert event.error is None
    assert event.name == "get"
    user = event.result
    assert isinstance(user, corelogin.User)
    assert user == created
    assert user.to_dict() == {
        "user_id": created.user_id,
        "username": "Donna",
        "email": "donna@home.com",
        "scope": "default",
        "group": "players",
        "extra": {"lv": 3, "vip": True},
        "active": True,
        "confirmation": None,
        "created": created.created,
    }


# -- extra ---------------------------------------------------------------------------------


async def test_update_merges_extra_key_by_key(core: corelogin.Core) -> None:
    user = await donna_logged_in(core, extra={"lv": 3, "hat": "red"})

    event = await update(core, user.user_id, extra={"lv": 4, "coins": 10})

    assert event.error is None, event
    assert event.result.extra == {"lv": 4, "hat": "red", "coins": 10}
    assert (await core.users.get({"user_id": user.user_id})).result.extra == event.result.extra


@pytest.mark.parametrize("remove", ["NULL", "None"])
async def test_null_or_none_removes_an_extra_key(core: corelogin.Core, remove: str) -> None:
    user = await donna_logged_in(core, extra={"lv": 3, "hat": "red"})
    value = core.users.NULL if remove == "NULL" else None

    event = await update(core, user.user_id, extra={"hat": value, "coins": 1})

    assert event.error is None, event
    assert event.result.extra == {"lv": 3, "coins": 1}


async def test_a_non_string_key_in_extra_is_801_even_with_a_null_value(
    core: corelogin.Core,
) -> None:
    user = await donna_logged_in(core, extra={"1": "one", "lv": 3})

    event = await update(core, user.user_id, extra={1: core.users.NULL})

    assert event.status == 801
    assert (await core.users.get({"user_id": user.user_id})).result.extra == {"1": "one", "lv": 3}


async def test_removing_every_extra_key_leaves_extra_none(
    core: corelogin.Core, server: RunningServer
) -> None:
    user = await donna_logged_in(core, extra={"lv": 3, "hat": "red"})

    event = await update(core, user.user_id, extra={"lv": core.users.NULL, "hat": None})

    assert event.error is None, event
    assert event.result.extra is None
    stored = await server.store.get_user("default", user.user_id)
    assert stored is not None
    assert stored.extra is None


async def test_an_unknown_key_inside_update_is_801(
    core: corelogin.Core, server: RunningServer
) -> None:
    """Refused by the SDK before sending, and by the server for a client that skips that."""
    user = await donna_logged_in(core, extra={"lv": 3})

    event = await update(core, user.user_id, level=4)
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            server.url + CALLS["update"].path,
            json={"scope": "default", "user_id": user.user_id, "update": {"level": 4}},
            headers={APP_KEY_HEADER: APP_KEY, "Authorization": f"Bearer {core._session_token}"},
        ) as response,
    ):
        raw = await response.json()

    assert event.status == 801
    assert "level" in (event.error or "")
    assert raw["status"] == 801
    assert (await core.users.get({"user_id": user.user_id})).result.extra == {"lv": 3}


async def test_extra_merged_beyond_16_kib_is_806_and_nothing_changes(
    core: corelogin.Core, server: RunningServer
) -> None:
    half = "x" * (EXTRA_MAX_BYTES // 2 + 100)
    user = await donna_logged_in(core, extra={"a": half})
    before = await server.store.get_user("default", user.user_id)

    event = await update(core, user.user_id, extra={"b": half}, username="Dana")

    assert event.status == 806, event
    assert str(EXTRA_MAX_BYTES) in (event.error or "")
    assert await server.store.get_user("default", user.user_id) == before
    assert (await login(core, username="Donna")).error is None


# -- usernames and emails ------------------------------------------------------------------


async def test_a_new_username_logs_in_and_the_old_one_does_not(
    core: corelogin.Core, other: corelogin.Core
) -> None:
    user = await donna_logged_in(core)

    event = await update(core, user.user_id, username="Dana")

    assert event.error is None, event
    assert event.result.username == "Dana"
    assert (await login(other, username="Dana")).result.user_id == user.user_id
    assert (await login(other, username="Donna")).status == 603


async def test_changing_only_the_letter_case_of_ones_username_is_allowed(
    core: corelogin.Core,
) -> None:
    user = await donna_logged_in(core)

    event = await update(core, user.user_id, username="DONNA")

    assert event.error is None, event
    assert event.result.username == "DONNA"


@pytest.mark.parametrize("taken", ["Tina", "TINA", "tina", "\uff34\uff49\uff4e\uff41"])
async def test_a_taken_username_is_600_in_any_case(
    core: corelogin.Core, server: RunningServer, taken: str
) -> None:
    await make_user(core, "Tina")
    user = await donna_logged_in(core)
    before = await server.store.get_user("default", user.user_id)

    event = await update(core, user.user_id, username=taken, extra={"lv": 1})

    assert event.status == 600, event
    assert await server.store.get_user("default", user.user_id) == before


@pytest.mark.parametrize(
    "bad", [" Dana", "Dana ", "Da\x07na", "Da\tna", "Dana\u200b"], ids=str.__repr__
)
async def test_a_bad_new_username_is_601(
    core: corelogin.Core, server: RunningServer, bad: str
) -> None:
    user = await donna_logged_in(core)

    event = await update(core, user.user_id, username=bad)

    assert event.status == 601, event
    stored = await server.store.get_user("default", user.user_id)
    assert stored is not None
    assert stored.username == "Donna"


async def test_a_taken_email_is_600(core: corelogin.Core, server: RunningServer) -> None:
    await make_user(core, "Tina", email="tina@home.com")
    user = await donna_logged_in(core, email="donna@home.com")

    event = await update(core, user.user_id, email="TINA@Home.com", current_password=PASSWORD)

    assert event.status == 600, event
    stored = await server.store.get_user("default", user.user_id)
    assert stored is not None
    assert stored.email == "donna@home.com"


@pytest.mark.parametrize("bad", ["not-an-address", "a@b", "@home.com", "do nna@home.com"])
async def test_a_malformed_email_is_704(core: corelogin.Core, bad: str) -> None:
    user = await donna_logged_in(core, email="donna@home.com")

    event = await update(core, user.user_id, email=bad, current_password=PASSWORD)

    assert event.status == 704, event
    assert (await core.users.get({"user_id": user.user_id})).result.email == "donna@home.com"


async def test_an_email_change_needs_the_current_password(
    core: corelogin.Core, other: corelogin.Core
) -> None:
    user = await donna_logged_in(core, email="donna@home.com")

    missing = await update(core, user.user_id, email="dana@home.com")
    wrong = await update(core, user.user_id, email="dana@home.com", current_password="nope nope")
    right = await update(core, user.user_id, email="dana@home.com", current_password=PASSWORD)

    assert missing.status == 804
    assert "current_password" in (missing.error or "")
    assert wrong.status == 603
    assert right.error is None, right
    assert right.result.email == "dana@home.com"
    by_email = await other.users.login({"email": "DANA@home.com", "password": PASSWORD})
    assert by_email.result.user_id == user.user_id
    old = await other.users.login({"email": "donna@home.com", "password": PASSWORD})
    assert old.status == 603


# -- passwords -----------------------------------------------------------------------------


async def test_an_own_password_change_without_current_password_is_804(
    core: corelogin.Core, other: corelogin.Core
) -> None:
    user = await donna_logged_in(core)

    event = await update(core, user.user_id, password=NEW_PASSWORD)

    assert event.status == 804
    assert "current_password" in (event.error or "")
    assert (await login(other, NEW_PASSWORD)).status == 603
    assert (await login(other, PASSWORD)).error is None


async def test_a_wrong_current_password_is_603_and_changes_nothing(
    core: corelogin.Core, other: corelogin.Core
) -> None:
    user = await donna_logged_in(core)

    event = await update(
        core, user.user_id, password=NEW_PASSWORD, current_password="not the password"
    )

    assert event.status == 603
    assert (await login(other, NEW_PASSWORD)).status == 603
    assert (await login(other, PASSWORD)).error is None
    assert (await core.users.get({"user_id": user.user_id})).error is None  # still logged in


async def test_a_password_change_with_the_current_password(
    core: corelogin.Core, other: corelogin.Core
) -> None:
    user = await donna_logged_in(core)

    event = await update(core, user.user_id, password=NEW_PASSWORD, current_password=PASSWORD)

    assert event.error is None, event
    assert (await login(other, NEW_PASSWORD)).result.user_id == user.user_id
    assert (await login(other, PASSWORD)).status == 603


async def test_a_password_change_ends_the_other_sessions_but_not_the_current_one(
    core: corelogin.Core, other: corelogin.Core, server: RunningServer
) -> None:
    user = await donna_logged_in(core)
    assert (await login(other)).error is None
    assert (await other.users.get({"user_id": user.user_id})).error is None

    event = await update(core, user.user_id, password=NEW_PASSWORD, current_password=PASSWORD)

    assert event.error is None, event
    assert (await other.users.get({"user_id": user.user_id})).status == 609
    assert (await core.users.get({"user_id": user.user_id})).error is None
    assert core.users.logged_in_user is not None


@pytest.mark.parametrize("common", ["password123", "12345678", "qwertyuiop"])
async def test_a_common_new_password_is_601_with_the_reason(
    core: corelogin.Core, other: corelogin.Core, common: str
) -> None:
    user = await donna_logged_in(core)

    event = await update(core, user.user_id, password=common, current_password=PASSWORD)

    assert event.status == 601
    assert "too easy to guess" in (event.error or "")
    assert (await login(other, PASSWORD)).error is None


async def test_a_short_new_password_is_601_saying_how_long(
    core: corelogin.Core, admin: corelogin.Core
) -> None:
    user = await donna_logged_in(core)

    event = await update(admin, user.user_id, password="x7#kQ")

    assert event.status == 601
    assert "at least 8 characters" in (event.error or "")


# -- what the admin key may do -------------------------------------------------------------


async def test_deactivation_ends_every_session_and_login_stays_possible_unvalidated(
    core: corelogin.Core, admin: corelogin.Core, server: RunningServer
) -> None:
    user = await donna_logged_in(core)
    events_before = await server.store.login_events(user.user_id)
    assert len(events_before) == 1

    event = await update(admin, user.user_id, active=False)

    assert event.error is None, event
    assert event.result.active is False
    assert (await core.users.get({"user_id": user.user_id})).status == 609
    again = await login(core)
    assert again.error is None, again
    assert again.result.active is False
    assert again.result.validated is False
    assert await server.store.login_events(user.user_id) == events_before


async def test_a_deactivated_user_may_read_but_not_change_or_delete_their_account(
    core: corelogin.Core, admin: corelogin.Core
) -> None:
    """Seed 004 lets them log in; the administrator's decision keeps them from undoing it."""
    user = await donna_logged_in(core)
    assert (await update(admin, user.user_id, active=False)).error is None
    assert (await login(core)).error is None

    read = await core.users.get({"user_id": user.user_id})
    changed = await update(core, user.user_id, extra={"lv": 9})
    deleted = await core.users.delete({"user_id": user.user_id})

    assert read.error is None, read
    assert (changed.status, deleted.status) == (607, 607)
    assert (await admin.users.get({"user_id": user.user_id})).result.extra is None


async def test_reactivation_makes_the_login_validated_again(
    core: corelogin.Core, admin: corelogin.Core, server: RunningServer
) -> None:
    user = await donna_logged_in(core)
    assert (await update(admin, user.user_id, active=False)).error is None

    event = await update(admin, user.user_id, active=True)

    assert event.error is None, event
    assert event.result.active is True
    assert event.result.confirmation is None
    again = await login(core)
    assert again.result.active is True
    assert again.result.validated is True
    assert len(await server.store.login_events(user.user_id)) == 2


async def test_the_admin_sets_a_group(core: corelogin.Core, admin: corelogin.Core) -> None:
    user = await donna_logged_in(core, group="players")

    event = await update(admin, user.user_id, group="mods")

    assert event.error is None, event
    assert event.result.group == "mods"
    assert (await core.users.get({"user_id": user.user_id})).result.group == "mods"


async def test_an_admin_password_change_needs_no_current_password_and_ends_every_session(
    core: corelogin.Core, admin: corelogin.Core, other: corelogin.Core
) -> None:
    user = await donna_logged_in(core)

    event = await update(admin, user.user_id, password=NEW_PASSWORD)

    assert event.error is None, event
    assert (await core.users.get({"user_id": user.user_id})).status == 609
    assert (await login(other, PASSWORD)).status == 603
    assert (await login(other, NEW_PASSWORD)).error is None


async def test_an_admin_email_change_needs_no_current_password(
    core: corelogin.Core, admin: corelogin.Core
) -> None:
    user = await donna_logged_in(core, email="donna@home.com")

    event = await update(admin, user.user_id, email="dana@home.com")

    assert event.error is None, event
    assert event.result.email == "dana@home.com"
    assert (await core.users.get({"user_id": user.user_id})).error is None  # session kept


# -- delete --------------------------------------------------------------------------------


async def test_deleting_oneself_removes_the_user_its_sessions_and_login_events(
    core: corelogin.Core,
    admin: corelogin.Core,
    other: corelogin.Core,
    server_config: ServerConfig,
) -> None:
    user = await donna_logged_in(core)
    await make_user(other, "Tina")
    assert (await login(other, username="Tina")).error is None
    assert (await login(other)).error is None  # a second session of Donna's
    count = "SELECT count(*) FROM {} WHERE user_id = ?"
    assert db_rows(server_config, count.format("login_events"), user.user_id) == [(2,)]

    event = await core.users.delete({"user_id": user.user_id})

    assert event.error is None, event
    assert event.result == 1
    assert core.users.logged_in_user is None
    assert core._session_token is None
    assert (await login(other)).status == 603
    for table in ("users", "sessions", "login_events"):
        assert db_rows(server_config, count.format(table), user.user_id) == [(0,)], table
    assert db_rows(server_config, "SELECT username FROM users") == [("Tina",)]
    assert db_rows(server_config, "SELECT count(*) FROM sessions") == [(1,)]  # Tina's
    again = await admin.users.delete({"user_id": user.user_id})
    assert again.error is None
    assert again.result == 0


# -- signals and the logged-in user --------------------------------------------------------


async def test_user_updated_and_user_deleted_are_sent_once_with_the_event(
    core: corelogin.Core,
) -> None:
    user = await donna_logged_in(core)
    received: list[tuple[str, Any, corelogin.Event]] = []

    def on_updated(sender: Any, event: corelogin.Event) -> None:
        received.append(("updated", sender, event))

    def on_deleted(sender: Any, event: corelogin.Event) -> None:
        received.append(("deleted", sender, event))

    disconnect_updated = signals.subscribe(signals.user_updated, on_updated)
    disconnect_deleted = signals.subscribe(signals.user_deleted, on_deleted)
    try:
        updated = await update(core, user.user_id, extra={"lv": 2})
        refused = await update(core, user.user_id, group="mods")  # 610: no signal
        deleted = await core.users.delete({"user_id": user.user_id})
    finally:
        disconnect_updated()
        disconnect_deleted()

    assert refused.status == 610
    assert received == [("updated", core, updated), ("deleted", core, deleted)]
    assert received[0][2].result.extra == {"lv": 2}
    assert received[1][2].result == 1


async def test_logged_in_user_follows_an_update_of_that_user(core: corelogin.Core) -> None:
    user = await donna_logged_in(core, extra={"lv": 1})
    before = core.users.logged_in_user
    assert before is not None

    event = await update(core, user.user_id, username="Dana", extra={"lv": 2, "hat": "red"})

    assert event.error is None, event
    after = core.users.logged_in_user
    assert after is not None
    assert after.user_id == user.user_id
    assert after.username == "Dana"
    assert after.extra == {"lv": 2, "hat": "red"}
    assert after.validated is True
    assert after.scope == before.scope


async def test_an_admin_update_of_another_user_leaves_the_admins_login_alone(
    core: corelogin.Core, admin: corelogin.Core
) -> None:
    donna = await make_user(core, "Donna")
    await make_user(core, "Tina")
    assert (await login(admin, username="Tina")).error is None

    event = await update(admin, donna.user_id, username="Dana")

    assert event.error is None, event
    assert admin.users.logged_in_user is not None
    assert admin.users.logged_in_user.username == "Tina"


def test_every_call_has_its_lua_name_as_the_same_method() -> None:
    for call in CALLS.values():
        snake = getattr(Users, call.name)
        assert getattr(Users, call.lua_name) is snake, call.lua_name
    assert Users.resendConfirmation is Users.resend_confirmation
    assert Users.sendPasswordReset is Users.send_password_reset
    assert Users.resetPassword is Users.reset_password


async def test_lua_names_work_on_a_core(core: corelogin.Core) -> None:
    for call in CALLS.values():
        assert getattr(core.users, call.lua_name) == getattr(core.users, call.name)


# -- concurrency ---------------------------------------------------------------------------


async def test_updates_of_different_users_at_once_do_not_interfere(
    server: RunningServer,
) -> None:
    names = ["Ann", "Bob", "Cid", "Dee"]
    cores = [corelogin.init(server.url, APP_KEY) for _ in names]
    try:
        users = [await make_user(c, name) for c, name in zip(cores, names, strict=True)]
        for c, name in zip(cores, names, strict=True):
            assert (await login(c, username=name)).error is None

        events = await asyncio.gather(
            *(
                update(c, u.user_id, username=f"{u.username}2", extra={"owner": u.username})
                for c, u in zip(cores, users, strict=True)
            )
        )

        for event, u in zip(events, users, strict=True):
            assert event.error is None, event
            stored = await server.store.get_user("default", u.user_id)
            assert stored is not None
            assert stored.username == f"{u.username}2"
            assert stored.extra == {"owner": u.username}
    finally:
        for c in cores:
            await c.aclose()


async def test_twenty_concurrent_extra_updates_of_one_user_all_survive(
    core: corelogin.Core, server: RunningServer
) -> None:
    user = await donna_logged_in(core, extra={"base": 0})

    events = await asyncio.gather(
        *(update(core, user.user_id, extra={f"k{i}": i}) for i in range(20))
    )

    assert [event.status for event in events] == [None] * 20
    expected = {"base": 0, **{f"k{i}": i for i in range(20)}}
    stored = await server.store.get_user("default", user.user_id)
    assert stored is not None
    assert stored.extra == expected
    assert (await core.users.get({"user_id": user.user_id})).result.extra == expected
