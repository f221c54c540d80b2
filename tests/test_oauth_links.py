"""Coronium's OAuth API against the real server: add / get / update / remove a provider,
access_token_expired and update_token_expiry, by their snake_case and Lua names; who may call
them (610 / 604 / 607), the link rules (620 / 624 / 626) and the checks of expiries."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import attrs
import pytest

import corelogin
from corelogin.server import RunningServer, ServerConfig, start_server
from corelogin.wire import ADMIN_KEY_HEADER, APP_KEY_HEADER, CALLS
from tests.helpers import APP_KEY, PASSWORD, make_user
from tests.jwks import AUDIENCE, ISSUER, JwksServer, claims

ADMIN_KEY = "test-admin-key-for-oauth"
FUTURE = 1_893_456_000  # 2030
PAST = 1_000_000_000  # 2001
OAUTH_CALLS = (
    "add_auth_provider",
    "get_auth_provider",
    "update_auth_provider",
    "remove_auth_provider",
    "access_token_expired",
    "update_token_expiry",
)
# The calls about an existing link.
ON_A_LINK = OAUTH_CALLS[1:]


def params_for(call: str, user_id: str, provider: str = "facebook") -> dict[str, Any]:
    """Valid parameters of ``call`` (a link of ``fb-1`` with the token ``at-1``)."""
    extra: dict[str, Any] = {
        "add_auth_provider": {"auth": {"client_id": "fb-1", "access_token": "at-1"}},
        "update_auth_provider": {"update": {"access_token": "at-2"}},
        "update_token_expiry": {"expiry": FUTURE},
    }.get(call, {})
    return {"user_id": user_id, "provider": provider, **extra}


@pytest.fixture
def config(server_config: ServerConfig, jwks_server: JwksServer) -> ServerConfig:
    return attrs.evolve(
        server_config,
        admin_key=ADMIN_KEY,
        providers={
            "facebook": {"policy": "token"},
            "google": {
                "policy": "oidc",
                "issuer": ISSUER,
                "audiences": [AUDIENCE],
                "jwks_url": jwks_server.url,
            },
        },
    )


@pytest.fixture
async def running(config: ServerConfig) -> AsyncIterator[RunningServer]:
    async with await start_server(config) as server:
        yield server


@pytest.fixture
async def client(running: RunningServer) -> AsyncIterator[corelogin.Core]:
    async with corelogin.init(running.url, APP_KEY) as core:
        yield core


@pytest.fixture
async def admin(running: RunningServer) -> AsyncIterator[corelogin.Core]:
    async with corelogin.init(running.url, APP_KEY, admin_key=ADMIN_KEY) as core:
        yield core


async def logged_in(core: corelogin.Core, username: str = "Donna") -> str:
    """A new user, logged in on ``core``: its user_id."""
    user = await make_user(core, username)
    event = await core.users.login({"username": username, "password": PASSWORD})
    assert event.error is None, event
    return user.user_id


async def result(request: corelogin.Request) -> Any:
    event = await request
    assert event.error is None, event
    return event.result


async def failure(request: corelogin.Request) -> tuple[int | None, str | None]:
    event = await request
    assert event.result is None, event
    return event.status, event.error


def oauth(
    client_id: str = "fb-1",
    access_token: str | None = "at-1",  # noqa: S107 (a made-up token)
    expiry: int | None = None,
    *,
    provider: str = "facebook",
) -> corelogin.OAuth:
    return corelogin.OAuth(
        provider=provider,
        client_id=client_id,
        access_token=access_token,
        access_token_expiry=expiry,
        access_token_expired=expiry is not None and expiry <= time.time(),
    )


# -- happy paths ---------------------------------------------------------------------------


async def test_link_read_change_expire_renew_and_unlink_through_the_sdk(
    client: corelogin.Core,
) -> None:
    uid = await logged_in(client)
    users = client.users
    auth = {"client_id": "fb-1", "access_token": "at-1", "access_token_expiry": FUTURE}
    base = {"user_id": uid, "provider": "facebook"}

    added = await result(users.add_auth_provider({**base, "auth": auth}))
    assert added == oauth("fb-1", "at-1", FUTURE)
    assert isinstance(added, corelogin.OAuth)
    assert added["access_token"] == "at-1"  # returned to the user themself
    assert await result(users.get_auth_provider(base)) == added
    assert await result(users.access_token_expired(base)) == {"expired": False}

    changed = await result(users.update_auth_provider({**base, "update": {"access_token": "at-2"}}))
    assert changed == oauth("fb-1", "at-2", FUTURE)

    expired = await result(users.update_token_expiry({**base, "expiry": PAST}))
    assert expired == oauth("fb-1", "at-2", PAST)
    assert expired.access_token_expired is True
    assert await result(users.access_token_expired(base)) == {"expired": True}

    renewed = await result(users.update_token_expiry({**base, "expiry": FUTURE, "token": "at-3"}))
    assert renewed == oauth("fb-1", "at-3", FUTURE)
    assert await result(users.access_token_expired(base)) == {"expired": False}
    assert await result(users.get_auth_provider(base)) == renewed

    assert await result(users.remove_auth_provider(base)) == {"user_id": uid}
    assert await failure(users.get_auth_provider(base)) == (624, "that provider is not linked")


async def test_every_oauth_call_works_by_its_lua_name(client: corelogin.Core) -> None:
    assert [CALLS[name].lua_name for name in OAUTH_CALLS] == [
        "addAuthProvider",
        "getAuthProvider",
        "updateAuthProvider",
        "removeAuthProvider",
        "accessTokenExpired",
        "updateTokenExpiry",
    ]
    uid = await logged_in(client)
    users = client.users
    base = {"user_id": uid, "provider": "facebook"}

    add = users.addAuthProvider(
        {**base, "auth": {"client_id": "fb-1", "access_token": "at-1", "access_token_expiry": 5}}
    )
    added = await add
    assert (added.name, added.result) == ("add_auth_provider", oauth("fb-1", "at-1", 5))
    assert await result(users.getAuthProvider(base)) == oauth("fb-1", "at-1", 5)
    assert await result(users.accessTokenExpired(base)) == {"expired": True}
    assert await result(
        users.updateAuthProvider({**base, "update": {"access_token": "at-2"}})
    ) == oauth("fb-1", "at-2", 5)
    assert await result(users.updateTokenExpiry({**base, "expiry": FUTURE})) == oauth(
        "fb-1", "at-2", FUTURE
    )
    assert await result(users.accessTokenExpired(base)) == {"expired": False}
    assert await result(users.removeAuthProvider(base)) == {"user_id": uid}
    assert (await users.getAuthProvider(base)).status == 624


async def test_lua_named_calls_take_a_listener_as_the_lua_examples_do(
    client: corelogin.Core,
) -> None:
    uid = await logged_in(client)
    seen: list[corelogin.Event] = []

    request = client.users.addAuthProvider(
        {"user_id": uid, "provider": "facebook", "auth": {"client_id": "fb-1"}}, seen.append
    )
    event = await request

    assert seen == [event]
    assert event.result == oauth("fb-1", None)


async def test_update_auth_provider_can_change_the_expiry_and_the_token_together(
    client: corelogin.Core,
) -> None:
    uid = await logged_in(client)
    base = {"user_id": uid, "provider": "facebook"}
    await result(client.users.add_auth_provider({**base, "auth": {"client_id": "fb-1"}}))

    changed = await result(
        client.users.update_auth_provider(
            {**base, "update": {"access_token": "at-9", "access_token_expiry": PAST}}
        )
    )

    assert changed == oauth("fb-1", "at-9", PAST)
    assert changed.access_token_expired is True


async def test_update_auth_provider_with_a_new_client_id_under_token_policy(
    client: corelogin.Core,
) -> None:
    uid = await logged_in(client)
    base = {"user_id": uid, "provider": "facebook"}
    await result(
        client.users.add_auth_provider(
            {**base, "auth": {"client_id": "fb-1", "access_token": "at-1"}}
        )
    )

    changed = await result(
        client.users.update_auth_provider({**base, "update": {"client_id": "fb-2"}})
    )

    assert changed == oauth("fb-2", "at-1")


# -- 620 -------------------------------------------------------------------------------------


async def test_adding_a_provider_the_user_has_already_is_620(client: corelogin.Core) -> None:
    uid = await logged_in(client)
    base = {"user_id": uid, "provider": "facebook"}
    await result(client.users.add_auth_provider({**base, "auth": {"client_id": "fb-1"}}))

    status, _ = await failure(
        client.users.add_auth_provider({**base, "auth": {"client_id": "fb-2", "access_token": "x"}})
    )

    assert status == 620
    assert await result(client.users.get_auth_provider(base)) == oauth("fb-1", None)


async def test_identity_linked_to_another_user_of_the_scope_is_620(
    client: corelogin.Core, admin: corelogin.Core
) -> None:
    donna = await logged_in(client, "Donna")
    tina = (await make_user(admin, "Tina")).user_id
    await result(
        admin.users.add_auth_provider(
            {"user_id": tina, "provider": "facebook", "auth": {"client_id": "fb-1"}}
        )
    )

    status, _ = await failure(
        client.users.add_auth_provider(
            {"user_id": donna, "provider": "facebook", "auth": {"client_id": "fb-1"}}
        )
    )

    assert status == 620
    assert (
        await client.users.get_auth_provider({"user_id": donna, "provider": "facebook"})
    ).status == 624


async def test_updating_to_an_identity_linked_to_another_user_is_620(
    client: corelogin.Core, admin: corelogin.Core
) -> None:
    donna = await logged_in(client, "Donna")
    tina = (await make_user(admin, "Tina")).user_id
    for uid, client_id in ((tina, "fb-1"), (donna, "fb-2")):
        await result(
            admin.users.add_auth_provider(
                {"user_id": uid, "provider": "facebook", "auth": {"client_id": client_id}}
            )
        )
    base = {"user_id": donna, "provider": "facebook"}

    status, _ = await failure(
        client.users.update_auth_provider({**base, "update": {"client_id": "fb-1"}})
    )

    assert status == 620
    assert (await result(client.users.get_auth_provider(base))).client_id == "fb-2"


async def test_the_same_identity_may_be_linked_in_another_scope(
    client: corelogin.Core, running: RunningServer
) -> None:
    donna = await logged_in(client, "Donna")
    await result(
        client.users.add_auth_provider(
            {"user_id": donna, "provider": "facebook", "auth": {"client_id": "fb-1"}}
        )
    )

    async with corelogin.init(running.url, APP_KEY, scope="other") as elsewhere:
        other = await logged_in(elsewhere, "Donna")
        linked = await result(
            elsewhere.users.add_auth_provider(
                {"user_id": other, "provider": "facebook", "auth": {"client_id": "fb-1"}}
            )
        )

    assert other != donna
    assert linked == oauth("fb-1", None)


# -- 624 / 626 -------------------------------------------------------------------------------


@pytest.mark.parametrize("call", ON_A_LINK)
async def test_calls_about_a_link_the_user_does_not_have_are_624(
    client: corelogin.Core, jwks_server: JwksServer, call: str
) -> None:
    uid = await logged_in(client)
    # A link to another provider does not count.
    token = jwks_server.keys.sign(claims("g-1"))
    await result(
        client.users.add_auth_provider(
            {"user_id": uid, "provider": "google", "auth": {"client_id": "g-1", "id_token": token}}
        )
    )

    status, error = await failure(getattr(client.users, call)(params_for(call, uid)))

    assert (status, error) == (624, "that provider is not linked")


@pytest.mark.parametrize("call", OAUTH_CALLS)
async def test_a_provider_the_server_does_not_enable_is_626_for_every_call(
    client: corelogin.Core, admin: corelogin.Core, call: str
) -> None:
    uid = await logged_in(client)

    by_session = await failure(getattr(client.users, call)(params_for(call, uid, "myspace")))
    by_admin = await failure(getattr(admin.users, call)(params_for(call, uid, "apple")))

    assert by_session[0] == 626
    assert "myspace" in str(by_session[1])
    assert by_admin[0] == 626


# -- who may call: 610 / 604 / 607 -------------------------------------------------------------


@pytest.mark.parametrize("call", OAUTH_CALLS)
async def test_without_a_session_every_call_is_610(client: corelogin.Core, call: str) -> None:
    uid = (await make_user(client)).user_id

    status, _ = await failure(getattr(client.users, call)(params_for(call, uid)))

    assert status == 610


@pytest.mark.parametrize("call", OAUTH_CALLS)
async def test_with_another_users_session_every_call_is_610(
    client: corelogin.Core, admin: corelogin.Core, call: str
) -> None:
    tina = (await make_user(admin, "Tina")).user_id
    await result(
        admin.users.add_auth_provider(
            {"user_id": tina, "provider": "facebook", "auth": {"client_id": "fb-9"}}
        )
    )
    await logged_in(client, "Donna")

    status, _ = await failure(getattr(client.users, call)(params_for(call, tina)))
    unknown, _ = await failure(getattr(client.users, call)(params_for(call, "no-such-user")))

    assert status == 610
    assert unknown == 610  # a session learns nothing of which ids exist
    # Tina's link is as it was.
    assert await result(
        admin.users.get_auth_provider({"user_id": tina, "provider": "facebook"})
    ) == oauth("fb-9", None)


async def test_the_admin_key_acts_on_any_user(admin: corelogin.Core) -> None:
    uid = (await make_user(admin, "Donna")).user_id
    base = {"user_id": uid, "provider": "facebook"}
    users = admin.users

    assert await result(
        users.add_auth_provider({**base, "auth": {"client_id": "fb-1", "access_token": "at-1"}})
    ) == oauth("fb-1", "at-1")
    assert await result(users.get_auth_provider(base)) == oauth("fb-1", "at-1")
    assert await result(
        users.update_auth_provider({**base, "update": {"access_token": "at-2"}})
    ) == oauth("fb-1", "at-2")
    assert await result(users.update_token_expiry({**base, "expiry": PAST})) == oauth(
        "fb-1", "at-2", PAST
    )
    assert await result(users.access_token_expired(base)) == {"expired": True}
    assert await result(users.remove_auth_provider(base)) == {"user_id": uid}
    assert admin.users.logged_in_user is None  # no session was needed


@pytest.mark.parametrize("call", OAUTH_CALLS)
async def test_the_admin_key_gets_604_for_an_unknown_user(admin: corelogin.Core, call: str) -> None:
    status, _ = await failure(getattr(admin.users, call)(params_for(call, "no-such-user")))

    assert status == 604


@pytest.mark.parametrize(
    ("call", "allowed"),
    [
        ("add_auth_provider", False),
        ("update_auth_provider", False),
        ("remove_auth_provider", False),
        ("update_token_expiry", False),
        ("get_auth_provider", True),
        ("access_token_expired", True),
    ],
)
async def test_a_deactivated_users_own_session_may_read_its_links_but_not_change_them(
    client: corelogin.Core, admin: corelogin.Core, call: str, allowed: bool
) -> None:
    uid = (await make_user(client)).user_id
    if call != "add_auth_provider":
        await result(
            admin.users.add_auth_provider(
                {"user_id": uid, "provider": "facebook", "auth": {"client_id": "fb-1"}}
            )
        )
    await result(admin.users.update({"user_id": uid, "update": {"active": False}}))
    login = await result(client.users.login({"username": "Donna", "password": PASSWORD}))
    assert (login.active, login.validated) == (False, False)

    event = await getattr(client.users, call)(params_for(call, uid))

    if allowed:
        assert event.error is None, event
    else:
        assert event.status == 607
        linked = await admin.users.get_auth_provider({"user_id": uid, "provider": "facebook"})
        expected = None if call == "add_auth_provider" else oauth("fb-1", None)
        assert linked.result == expected


# -- oidc links ------------------------------------------------------------------------------


async def test_update_auth_provider_with_a_new_oidc_client_id_needs_its_id_token(
    client: corelogin.Core, jwks_server: JwksServer
) -> None:
    uid = await logged_in(client)
    base = {"user_id": uid, "provider": "google"}
    await result(
        client.users.add_auth_provider(
            {**base, "auth": {"client_id": "g-1", "id_token": jwks_server.keys.sign(claims("g-1"))}}
        )
    )

    without = await failure(
        client.users.update_auth_provider({**base, "update": {"client_id": "g-2"}})
    )
    of_another = await failure(
        client.users.update_auth_provider(
            {
                **base,
                "update": {"client_id": "g-2", "id_token": jwks_server.keys.sign(claims("g-1"))},
            }
        )
    )
    assert without == (625, "the provider's proof was rejected")
    assert of_another == without
    assert (await result(client.users.get_auth_provider(base))).client_id == "g-1"

    changed = await result(
        client.users.update_auth_provider(
            {
                **base,
                "update": {"client_id": "g-2", "id_token": jwks_server.keys.sign(claims("g-2"))},
            }
        )
    )
    assert changed == oauth("g-2", None, provider="google")
    # The new identity logs in; the old one is nobody's now.
    new = await result(
        client.users.login(
            {
                "provider": "google",
                "client_id": "g-2",
                "id_token": jwks_server.keys.sign(claims("g-2")),
            }
        )
    )
    assert new.user_id == uid
    old = await client.users.login(
        {"provider": "google", "client_id": "g-1", "id_token": jwks_server.keys.sign(claims("g-1"))}
    )
    assert old.status == 624


async def test_update_auth_provider_of_an_oidc_link_without_a_new_client_id_needs_no_proof(
    client: corelogin.Core, jwks_server: JwksServer
) -> None:
    uid = await logged_in(client)
    base = {"user_id": uid, "provider": "google"}
    await result(
        client.users.add_auth_provider(
            {**base, "auth": {"client_id": "g-1", "id_token": jwks_server.keys.sign(claims("g-1"))}}
        )
    )

    changed = await result(
        client.users.update_auth_provider({**base, "update": {"access_token": "ya29.token"}})
    )

    assert changed == oauth("g-1", "ya29.token", provider="google")


# -- expiries --------------------------------------------------------------------------------


async def test_expiry_given_as_a_whole_float_is_taken_as_unix_seconds(
    client: corelogin.Core,
) -> None:
    uid = await logged_in(client)
    base = {"user_id": uid, "provider": "facebook"}

    added = await result(
        client.users.add_auth_provider(
            {**base, "auth": {"client_id": "fb-1", "access_token_expiry": 1893456000.0}}
        )
    )
    renewed = await result(client.users.update_token_expiry({**base, "expiry": 1893456001.0}))

    assert added.access_token_expiry == 1893456000
    assert type(added.access_token_expiry) is int
    assert renewed.access_token_expiry == 1893456001
    assert type(renewed.access_token_expiry) is int


@pytest.mark.parametrize("expiry", [-1, True, False, 1.5, "1893456000", float("nan"), 2**60])
async def test_expiry_that_is_not_unix_seconds_is_801(client: corelogin.Core, expiry: Any) -> None:
    uid = await logged_in(client)
    base = {"user_id": uid, "provider": "facebook"}
    await result(client.users.add_auth_provider({**base, "auth": {"client_id": "fb-1"}}))

    renew = await failure(client.users.update_token_expiry({**base, "expiry": expiry}))
    add = await failure(
        client.users.add_auth_provider(
            {
                **base,
                "provider": "google",
                "auth": {"client_id": "g", "access_token_expiry": expiry},
            }
        )
    )
    change = await failure(
        client.users.update_auth_provider({**base, "update": {"access_token_expiry": expiry}})
    )

    assert (renew[0], add[0], change[0]) == (801, 801, 801)
    assert (await result(client.users.get_auth_provider(base))).access_token_expiry is None


@pytest.mark.parametrize(
    ("expiry", "status"), [(-1, 801), (True, 801), (1.5, 801), (1893456000.0, None)]
)
async def test_the_server_checks_expiries_itself(
    running: RunningServer, admin: corelogin.Core, expiry: Any, status: int | None
) -> None:
    """What another client could send, past the SDK's own checks."""
    uid = (await make_user(admin)).user_id
    await result(
        admin.users.add_auth_provider(
            {"user_id": uid, "provider": "facebook", "auth": {"client_id": "fb-1"}}
        )
    )
    body = {"scope": "default", "user_id": uid, "provider": "facebook", "expiry": expiry}
    headers = {APP_KEY_HEADER: APP_KEY, ADMIN_KEY_HEADER: ADMIN_KEY}

    async with (
        aiohttp.ClientSession() as session,
        session.post(
            running.url + CALLS["update_token_expiry"].path, json=body, headers=headers
        ) as response,
    ):
        answer = await response.json()

    assert answer.get("status") == status, answer
    if status is None:
        assert answer["result"]["access_token_expiry"] == 1893456000
    else:
        assert response.status == 400


# -- unlinking and deleting ----------------------------------------------------------------


async def test_after_remove_the_provider_no_longer_logs_in(
    client: corelogin.Core, jwks_server: JwksServer, running: RunningServer
) -> None:
    uid = await logged_in(client)
    token = jwks_server.keys.sign(claims("g-1"))
    await result(
        client.users.add_auth_provider(
            {
                "user_id": uid,
                "provider": "facebook",
                "auth": {"client_id": "fb-1", "access_token": "at-1"},
            }
        )
    )
    await result(
        client.users.add_auth_provider(
            {"user_id": uid, "provider": "google", "auth": {"client_id": "g-1", "id_token": token}}
        )
    )
    async with corelogin.init(running.url, APP_KEY) as other:
        fb = {"provider": "facebook", "client_id": "fb-1", "access_token": "at-1"}
        google = {"provider": "google", "client_id": "g-1", "id_token": token}
        assert (await result(other.users.login(fb))).user_id == uid
        assert (await result(other.users.login(google))).user_id == uid

        for provider in ("facebook", "google"):
            assert await result(
                client.users.remove_auth_provider({"user_id": uid, "provider": provider})
            ) == {"user_id": uid}

        assert (await other.users.login(fb)).status == 625  # token: nothing to compare with
        assert (await other.users.login(google)).status == 624  # oidc: proven, but nobody's


async def test_removing_twice_is_624_the_second_time(client: corelogin.Core) -> None:
    uid = await logged_in(client)
    base = {"user_id": uid, "provider": "facebook"}
    await result(client.users.add_auth_provider({**base, "auth": {"client_id": "fb-1"}}))

    assert await result(client.users.remove_auth_provider(base)) == {"user_id": uid}
    assert (await failure(client.users.remove_auth_provider(base)))[0] == 624


async def test_deleting_a_user_frees_its_identities_for_a_new_user(
    client: corelogin.Core, admin: corelogin.Core, running: RunningServer
) -> None:
    uid = await logged_in(client)
    await result(
        client.users.add_auth_provider(
            {
                "user_id": uid,
                "provider": "facebook",
                "auth": {"client_id": "fb-1", "access_token": "at-1"},
            }
        )
    )
    assert await result(client.users.delete({"user_id": uid})) == 1
    fb = {"provider": "facebook", "client_id": "fb-1", "access_token": "at-1"}
    assert (await client.users.login(fb)).status == 625

    newcomer = (await make_user(admin, "Newcomer")).user_id
    linked = await result(
        admin.users.add_auth_provider(
            {
                "user_id": newcomer,
                "provider": "facebook",
                "auth": {"client_id": "fb-1", "access_token": "at-2"},
            }
        )
    )

    assert linked == oauth("fb-1", "at-2")
    login = await result(client.users.login({**fb, "access_token": "at-2"}))
    assert login.user_id == newcomer
    assert login.oauth == oauth("fb-1", "at-2")
