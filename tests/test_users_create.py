"""users.create: the new user, uniqueness per scope, password policy, untouched params."""

from __future__ import annotations

import copy
import uuid

import pytest

import corelogin
from corelogin.server import RunningServer, ServerConfig, start_server
from corelogin.server.passwords import PasswordHasher
from tests.helpers import APP_KEY, PASSWORD, make_user


async def test_create_returns_the_new_user(core: corelogin.Core) -> None:
    event = await core.users.create(
        {
            "username": "Donna",
            "password": PASSWORD,
            "email": "donna@home.com",
            "group": "players",
            "extra": {"color": "red", "level": 2},
        }
    )
    assert event.error is None, event
    user = event.result
    assert isinstance(user, corelogin.User)
    assert uuid.UUID(user.user_id).version == 4
    assert (user.username, user.email, user.group, user.scope) == (
        "Donna",
        "donna@home.com",
        "players",
        "default",
    )
    assert user.extra == {"color": "red", "level": 2}
    assert user.active is True
    assert user.confirmation is None
    assert "password" not in repr(event)
    assert PASSWORD not in repr(event)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"username": "Donna"}, {"username": "Donna"}),
        ({"username": "Donna"}, {"username": "dONNA"}),
        ({"username": "Donna", "email": "d@home.com"}, {"username": "Tina", "email": "D@HOME.com"}),
    ],
    ids=["same-username", "username-case", "email-case"],
)
async def test_duplicate_username_or_email_gives_600(
    core: corelogin.Core, first: dict[str, str], second: dict[str, str]
) -> None:
    await make_user(core, **first)

    event = await core.users.create({**second, "password": PASSWORD})

    assert event.status == 600
    assert event.error == "user already exists"


async def test_same_username_may_exist_in_another_scope(
    core: corelogin.Core, server: RunningServer
) -> None:
    await make_user(core, "Donna")
    async with corelogin.init(server.url, APP_KEY, scope="other-game") as other:
        event = await other.users.create({"username": "Donna", "password": PASSWORD})
    assert event.error is None
    assert event.result.scope == "other-game"


async def test_concurrent_creates_of_one_name_give_one_user(core: corelogin.Core) -> None:
    requests = [core.users.create({"username": "Racer", "password": PASSWORD}) for _ in range(5)]
    statuses = sorted([str((await request).status) for request in requests])
    assert statuses == ["600", "600", "600", "600", "None"]


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"username": "Donna", "password": "short"}, 601),
        ({"username": " Donna", "password": PASSWORD}, 601),
        ({"username": "Don\x00na", "password": PASSWORD}, 601),
        ({"username": "Donna", "password": PASSWORD, "email": "not-an-address"}, 704),
        ({"username": "Donna", "password": PASSWORD, "email": "a@b"}, 704),
    ],
    ids=["short-password", "leading-space", "control-char", "bad-email", "email-no-dot"],
)
async def test_create_refuses_bad_new_users(
    core: corelogin.Core, params: dict[str, str], status: int
) -> None:
    event = await core.users.create(params)
    assert event.status == status
    assert event.result is None


async def test_params_are_never_mutated(core: corelogin.Core) -> None:
    create = {
        "username": "Donna",
        "password": PASSWORD,
        "extra": {"inventory": ["sword"]},
        "timeout": 10,
        "unknown": "kept",
    }
    login = {"username": "Donna", "password": PASSWORD, "timeout": 10}
    bad = {"username": "", "password": PASSWORD}
    snapshots = [copy.deepcopy(p) for p in (create, login, bad)]

    await core.users.create(create)
    await core.users.login(login)
    await core.users.login(bad)

    assert [create, login, bad] == snapshots


async def test_a_taken_name_costs_the_same_hash_work_as_a_free_one(
    server_config: ServerConfig,
) -> None:
    """Create hashes the password before it looks at the name, so that the time of a 600 does
    not tell a taken name from a free one (the hasher counts its work here)."""
    hasher = CountingHasher()
    running = await start_server(server_config, hasher=hasher)
    async with running, corelogin.init(running.url, APP_KEY) as core:
        free = await core.users.create({"username": "Donna", "password": PASSWORD})
        hashes_for_a_free_name = hasher.hashes
        taken = await core.users.create({"username": "DONNA", "password": PASSWORD})
    assert free.error is None
    assert taken.status == corelogin.Status.USER_EXISTS
    assert hashes_for_a_free_name == 1
    assert hasher.hashes == 2, "the taken name cost a hash too"


class CountingHasher(PasswordHasher):
    """The real hasher, counting the hashes it makes."""

    def __init__(self) -> None:
        super().__init__(workers=1)
        self.hashes = 0

    async def hash(self, password: str) -> str:
        self.hashes += 1
        return await super().hash(password)
