"""Lockout (606) against the real server: exactly at the threshold for known and unknown
identifiers alike, the hasher running on locked attempts too, the reset on success, the end of
a lock, the administrator's unlock, and concurrent failures counted one by one."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import attrs
import pytest

import corelogin
from corelogin.server import RunningServer, ServerConfig, start_server
from corelogin.server.passwords import PasswordHasher
from tests.helpers import APP_KEY, PASSWORD, make_user, server_config_for

ADMIN_KEY = "test-admin-key-0123456789"
WRONG = "not the password"
LOCKED = 606
INVALID = 603


@pytest.fixture
def server_config(tmp_path: Path) -> ServerConfig:
    return attrs.evolve(
        server_config_for(tmp_path / "corelogin.sqlite3"),
        lockout_threshold=3,
        lockout_window_seconds=60,
        lockout_seconds=300,
        admin_key=ADMIN_KEY,
    )


class CountingHasher(PasswordHasher):
    """The real hasher, counting the passwords it checks."""

    def __init__(self) -> None:
        super().__init__(queue=1000, per_account=1000)
        self.verified = 0

    async def verify(
        self, stored_hash: str | None, password: str, *, account: str | None = None
    ) -> bool:
        self.verified += 1
        return await super().verify(stored_hash, password, account=account)


async def statuses(core: corelogin.Core, params: dict[str, str], times: int) -> list[int | None]:
    """The statuses of ``times`` logins made one after the other."""
    return [(await core.users.login(params)).status for _ in range(times)]


@pytest.mark.parametrize(
    "key",
    [
        {"username": "Donna"},
        {"username": "Nobody"},
        {"email": "donna@home.com"},
        {"email": "nobody@home.com"},
    ],
    ids=["known-username", "unknown-username", "known-email", "unknown-email"],
)
async def test_the_threshold_th_failure_is_the_last_603_and_then_even_the_password_gets_606(
    core: corelogin.Core, key: dict[str, str]
) -> None:
    await make_user(core, "Donna", email="donna@home.com")

    assert await statuses(core, {**key, "password": WRONG}, 3) == [INVALID] * 3
    locked = await core.users.login({**key, "password": PASSWORD})
    again = await core.users.login({**key, "password": WRONG})

    assert locked.status == again.status == LOCKED
    assert (
        locked.error
        == again.error
        == "account locked after too many failed logins; try again later"
    )
    assert locked.result is None


async def test_known_and_unknown_identifiers_get_the_same_answers(core: corelogin.Core) -> None:
    await make_user(core, "Donna")

    known = [await core.users.login({"username": "Donna", "password": WRONG}) for _ in range(5)]
    unknown = [await core.users.login({"username": "Nobody", "password": WRONG}) for _ in range(5)]

    assert [(e.status, e.error) for e in known] == [(e.status, e.error) for e in unknown]
    assert [e.status for e in known] == [INVALID] * 3 + [LOCKED] * 2


async def test_locked_attempts_still_run_the_hasher_once(server_config: ServerConfig) -> None:
    hasher = CountingHasher()
    async with (
        await start_server(server_config, hasher=hasher) as server,
        corelogin.init(server.url, APP_KEY) as core,
    ):
        await make_user(core, "Donna")
        for name in ("Donna", "Nobody"):
            assert await statuses(core, {"username": name, "password": WRONG}, 3) == [INVALID] * 3
            before = hasher.verified
            assert await statuses(core, {"username": name, "password": PASSWORD}, 2) == [LOCKED] * 2
            assert await statuses(core, {"username": name, "password": WRONG}, 2) == [LOCKED] * 2
            assert hasher.verified - before == 4


async def test_a_success_before_the_threshold_resets_the_count(core: corelogin.Core) -> None:
    await make_user(core, "Donna")
    wrong, right = (
        {"username": "Donna", "password": WRONG},
        {"username": "Donna", "password": PASSWORD},
    )

    assert await statuses(core, wrong, 2) == [INVALID] * 2
    assert (await core.users.login(right)).error is None
    # Three more failures are needed again: the count started over.
    assert await statuses(core, wrong, 3) == [INVALID] * 3
    assert (await core.users.login(right)).status == LOCKED


async def test_the_lock_ends_after_lockout_seconds(server_config: ServerConfig) -> None:
    config = attrs.evolve(server_config, lockout_seconds=1)
    async with await start_server(config) as server, corelogin.init(server.url, APP_KEY) as core:
        await make_user(core, "Donna")
        assert await statuses(core, {"username": "Donna", "password": WRONG}, 3) == [INVALID] * 3
        locked_at = time.monotonic()
        assert (
            await core.users.login({"username": "Donna", "password": PASSWORD})
        ).status == LOCKED

        await asyncio.sleep(max(0.0, locked_at + 1.1 - time.monotonic()))

        event = await core.users.login({"username": "Donna", "password": PASSWORD})
        assert event.error is None, event
        assert event.result.username == "Donna"


async def test_the_admin_key_unlocks_username_and_email_with_active_true(
    core: corelogin.Core, server: RunningServer
) -> None:
    user = await make_user(core, "Donna", email="donna@home.com")
    for key in ({"username": "Donna"}, {"email": "donna@home.com"}):
        assert await statuses(core, {**key, "password": WRONG}, 4) == [INVALID] * 3 + [LOCKED]

    async with corelogin.init(server.url, APP_KEY, admin_key=ADMIN_KEY) as admin:
        event = await admin.users.update({"user_id": user.user_id, "update": {"active": True}})
    assert event.error is None, event

    for key in ({"username": "Donna"}, {"email": "donna@home.com"}):
        login = await core.users.login({**key, "password": PASSWORD})
        assert login.error is None, login


async def test_an_update_without_active_true_does_not_unlock(
    core: corelogin.Core, server: RunningServer
) -> None:
    user = await make_user(core, "Donna")
    assert await statuses(core, {"username": "Donna", "password": WRONG}, 3) == [INVALID] * 3

    async with corelogin.init(server.url, APP_KEY, admin_key=ADMIN_KEY) as admin:
        event = await admin.users.update({"user_id": user.user_id, "update": {"group": "vip"}})
    assert event.error is None, event

    assert (await core.users.login({"username": "Donna", "password": PASSWORD})).status == LOCKED


async def test_username_email_and_scope_are_separate_identifiers(
    core: corelogin.Core, server: RunningServer
) -> None:
    await make_user(core, "Donna", email="donna@home.com")
    assert await statuses(core, {"username": "Donna", "password": WRONG}, 4) == [INVALID] * 3 + [
        LOCKED
    ]

    by_email = await core.users.login({"email": "donna@home.com", "password": PASSWORD})
    assert by_email.error is None, by_email
    async with corelogin.init(server.url, APP_KEY, scope="other-game") as other:
        elsewhere = await other.users.login({"username": "Donna", "password": WRONG})
    assert elsewhere.status == INVALID  # an unknown user there, not a locked one


async def test_concurrent_failures_give_exactly_the_threshold_of_603(
    server_config: ServerConfig,
) -> None:
    config = attrs.evolve(server_config, lockout_threshold=5)
    async with await start_server(config) as server, corelogin.init(server.url, APP_KEY) as core:
        await make_user(core, "Donna")
        wrong = {"username": "Donna", "password": WRONG}

        events = await asyncio.gather(*(core.users.login(wrong) for _ in range(20)))

        assert sorted(e.status for e in events) == [INVALID] * 5 + [LOCKED] * 15
        assert (
            await core.users.login({"username": "Donna", "password": PASSWORD})
        ).status == LOCKED


async def test_threshold_zero_turns_the_lockout_off(server_config: ServerConfig) -> None:
    config = attrs.evolve(server_config, lockout_threshold=0)
    async with await start_server(config) as server, corelogin.init(server.url, APP_KEY) as core:
        await make_user(core, "Donna")
        assert await statuses(core, {"username": "Donna", "password": WRONG}, 6) == [INVALID] * 6
        event = await core.users.login({"username": "Donna", "password": PASSWORD})
        assert event.error is None, event
        # ... and the failures are still on record.
        assert len(await server.store.failed_logins("default", "donna")) == 6


async def test_every_failure_is_recorded_with_address_agent_and_reason_never_the_password(
    core: corelogin.Core, server: RunningServer, server_config: ServerConfig
) -> None:
    await make_user(core, "Donna")
    await core.users.login({"username": "Nobody", "password": WRONG})
    await statuses(core, {"username": "DONNA", "password": WRONG}, 3)
    await core.users.login({"username": "Donna", "password": PASSWORD})  # locked

    recorded = await server.store.failed_logins("default")
    assert [(f.identifier, f.reason) for f in reversed(recorded)] == [
        ("nobody", "unknown user"),
        ("donna", "wrong password"),
        ("donna", "wrong password"),
        ("donna", "wrong password"),
        ("donna", "locked"),
    ]
    assert {f.remote for f in recorded} == {"127.0.0.1"}
    assert all(f.user_agent and "aiohttp" in f.user_agent.lower() for f in recorded)
    assert all(abs(f.at - time.time()) < 60 for f in recorded)
    db = sqlite3.connect(server_config.db.removeprefix("sqlite:///"))
    try:
        dump = "\n".join(db.iterdump())
    finally:
        db.close()
    assert WRONG not in dump
    assert PASSWORD not in dump
