"""users.login through an OAuth provider against the real server, per proof policy: oidc
(id_tokens of a real JWKS server, tests/jwks.py), token, introspect (a fake RFC 7662 and
debug_token endpoint, tests/introspection.py), device and trust_client_id; sign-ups; the
parameter rules; and that no token or device secret leaks into a log, a repr or the database."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

import corelogin
from corelogin import signals
from corelogin.server import RunningServer, ServerConfig, start_server
from tests.helpers import APP_KEY, PASSWORD, make_user
from tests.introspection import IntrospectionServer
from tests.jwks import AUDIENCE, ISSUER, JwksServer, claims, make_key

ADMIN_KEY = "test-admin-key-for-oauth-login"
FUTURE = 1_893_456_000  # 2030
PAST = 1_000_000_000  # 2001
PROOF_REJECTED = "the provider's proof was rejected"
NOT_LINKED = "that provider is not linked"
DEVICE_SECRET = "a1b2c3d4-device-secret-e5f6a7b8c9d0"

Start = Callable[..., Awaitable[tuple[RunningServer, corelogin.Core]]]


def oidc(jwks: JwksServer, **settings: Any) -> dict[str, Any]:
    """A Google-like provider table that trusts ``jwks``."""
    return {
        "policy": "oidc",
        "issuer": ISSUER,
        "audiences": [AUDIENCE],
        "jwks_url": jwks.url,
        **settings,
    }


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """The SQLite file of `server_config` (tests/conftest.py)."""
    return tmp_path / "corelogin.sqlite3"


@pytest.fixture
async def start(server_config: ServerConfig) -> AsyncIterator[Start]:
    """``await start(name=table, ...)``: a server with these providers and the admin key, and
    an asyncio Core talking to it; both closed after the test."""
    async with contextlib.AsyncExitStack() as stack:

        async def factory(**providers: Any) -> tuple[RunningServer, corelogin.Core]:
            config = attrs.evolve(server_config, providers=providers, admin_key=ADMIN_KEY)
            running = await stack.enter_async_context(await start_server(config))
            core = await stack.enter_async_context(corelogin.init(running.url, APP_KEY))
            return running, core

        yield factory


@pytest.fixture
async def admin_for() -> AsyncIterator[Callable[[RunningServer], corelogin.Core]]:
    """``admin_for(running)``: a Core with the admin key (closed after the test)."""
    made: list[corelogin.Core] = []

    def factory(running: RunningServer) -> corelogin.Core:
        core = corelogin.init(running.url, APP_KEY, admin_key=ADMIN_KEY)
        made.append(core)
        return core

    yield factory
    for core in made:
        await core.aclose()


async def result(request: corelogin.Request) -> Any:
    event = await request
    assert event.error is None, event
    return event.result


async def refused(request: corelogin.Request) -> tuple[int | None, str | None]:
    event = await request
    assert event.result is None, event
    return event.status, event.error


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def hand_made(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    """A JWT built by hand, as an attacker would."""
    head = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())
    return head + "." + b64url(signature)


def count(db_path: Path, sql: str, *args: object) -> int:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return int(db.execute(sql, args).fetchone()[0])
    finally:
        db.close()


def no_server_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        f"{record.name}: {record.getMessage()}"
        for record in caplog.records
        if record.levelno >= logging.ERROR
    ]


async def linked_user(
    core: corelogin.Core, provider: str, auth: dict[str, Any], username: str = "Donna"
) -> str:
    """A new user, logged in on ``core`` by password, linked to ``provider``: its user_id."""
    user = await make_user(core, username)
    await result(core.users.login({"username": username, "password": PASSWORD}))
    await result(
        core.users.add_auth_provider({"user_id": user.user_id, "provider": provider, "auth": auth})
    )
    return user.user_id


# == oidc ====================================================================================


async def test_oidc_login_gives_the_login_object_a_session_an_event_and_the_signal(
    start: Start, jwks_server: JwksServer
) -> None:
    running, core = await start(google=oidc(jwks_server))
    uid = await linked_user(
        core, "google", {"client_id": "g-1", "id_token": jwks_server.keys.sign(claims("g-1"))}
    )
    events_before = len(await running.store.login_events(uid))
    async with corelogin.init(running.url, APP_KEY) as other:
        seen: list[corelogin.Event] = []
        disconnect = signals.subscribe(
            signals.login, lambda sender, event: seen.append(event), sender=other
        )
        try:
            event = await other.users.login(
                {
                    "provider": corelogin.GOOGLE,
                    "client_id": "g-1",
                    "id_token": jwks_server.keys.sign(claims("g-1"), key="ec"),
                }
            )
            await asyncio.sleep(0)
        finally:
            disconnect()

        assert event.error is None, event
        login = event.result
        assert isinstance(login, corelogin.Login)
        assert login.user_id == uid
        assert (login.username, login.active, login.validated) == ("Donna", True, True)
        assert login.oauth == corelogin.OAuth(
            provider="google",
            client_id="g-1",
            access_token=None,
            access_token_expiry=None,
            access_token_expired=False,
        )
        assert other.users.logged_in_user == login
        assert seen == [event]
        # The session is real: it may read its own user.
        assert (await result(other.users.get({"user_id": uid}))).username == "Donna"
    assert len(await running.store.login_events(uid)) == events_before + 1


async def test_linking_oidc_needs_a_valid_id_token_whose_sub_is_the_client_id(
    start: Start, jwks_server: JwksServer
) -> None:
    _, core = await start(google=oidc(jwks_server))
    user = await make_user(core)
    await result(core.users.login({"username": "Donna", "password": PASSWORD}))
    base = {"user_id": user.user_id, "provider": "google"}
    impostor = make_key("rsa", kid=jwks_server.keys["rsa"].kid)

    for auth in (
        {"client_id": "g-1"},
        {"client_id": "g-1", "access_token": "ya29.x"},
        {"client_id": "g-1", "id_token": jwks_server.keys.sign(claims("g-2"))},
        {"client_id": "g-1", "id_token": jwks_server.keys.sign(claims("g-1"), key=impostor)},
        {"client_id": "g-1", "id_token": "not-a-jwt"},
    ):
        assert await refused(core.users.add_auth_provider({**base, "auth": auth})) == (
            625,
            PROOF_REJECTED,
        ), auth

    assert (await refused(core.users.get_auth_provider(base)))[0] == 624
    linked = await result(
        core.users.add_auth_provider(
            {**base, "auth": {"client_id": "g-1", "id_token": jwks_server.keys.sign(claims("g-1"))}}
        )
    )
    assert linked.client_id == "g-1"


def _bad_tokens(jwks: JwksServer) -> dict[str, str]:
    rsa = jwks.keys["rsa"]
    now = int(time.time())
    unsigned = hand_made({"alg": "HS256", "typ": "JWT", "kid": rsa.kid}, claims("g-1"))
    unsigned = unsigned.rsplit(".", 1)[0]
    mac = hmac.new(rsa.public_pem(), unsigned.encode("ascii"), hashlib.sha256).digest()
    return {
        "wrong signature": jwks.keys.sign(
            claims("g-1"), key=make_key("rsa", kid=rsa.kid), kid=rsa.kid
        ),
        "wrong aud": jwks.keys.sign(claims("g-1", audience="someone-else.apps.example.test")),
        "wrong iss": jwks.keys.sign(claims("g-1", issuer="https://evil.example.test")),
        "expired": jwks.keys.sign(claims("g-1", iat=now - 7200, exp=now - 3600)),
        "alg none": hand_made({"alg": "none", "typ": "JWT", "kid": rsa.kid}, claims("g-1")),
        "hs256 with the public key": unsigned + "." + b64url(mac),
        "unknown kid": jwks.keys.sign(claims("g-1"), key=make_key("rsa")),
        "sub is not the client_id": jwks.keys.sign(claims("g-2")),
        "no sub": jwks.keys.sign(claims(None)),
        "tampered payload": (
            jwks.keys.sign(claims("g-2")).split(".")[0]
            + "."
            + b64url(json.dumps(claims("g-1")).encode())
            + "."
            + jwks.keys.sign(claims("g-2")).split(".")[2]
        ),
        "garbage": "eyJhbGciOi.garbage.garbage",
    }


@pytest.mark.parametrize(
    "case",
    [
        "wrong signature",
        "wrong aud",
        "wrong iss",
        "expired",
        "alg none",
        "hs256 with the public key",
        "unknown kid",
        "sub is not the client_id",
        "no sub",
        "tampered payload",
        "garbage",
    ],
)
async def test_bad_id_token_of_a_linked_identity_is_625_without_a_server_error(
    start: Start,
    jwks_server: JwksServer,
    caplog: pytest.LogCaptureFixture,
    admin_for: Callable[[RunningServer], corelogin.Core],
    case: str,
) -> None:
    running, core = await start(google=oidc(jwks_server))
    admin = admin_for(running)
    user = await make_user(admin)
    await result(
        admin.users.add_auth_provider(
            {
                "user_id": user.user_id,
                "provider": "google",
                "auth": {"client_id": "g-1", "id_token": jwks_server.keys.sign(claims("g-1"))},
            }
        )
    )
    token = _bad_tokens(jwks_server)[case]

    status, error = await refused(
        core.users.login({"provider": "google", "client_id": "g-1", "id_token": token})
    )

    assert (status, error) == (625, PROOF_REJECTED)
    assert core.users.logged_in_user is None
    assert no_server_errors(caplog) == []
    assert token not in caplog.text
    # The good token still works: nothing was broken for the identity.
    good = jwks_server.keys.sign(claims("g-1"))
    login = await result(
        core.users.login({"provider": "google", "client_id": "g-1", "id_token": good})
    )
    assert login.user_id == user.user_id


async def test_a_rotated_key_is_accepted_after_one_refetch(
    start: Start, jwks_server: JwksServer
) -> None:
    _, core = await start(google=oidc(jwks_server))
    await linked_user(
        core, "google", {"client_id": "g-1", "id_token": jwks_server.keys.sign(claims("g-1"))}
    )
    assert jwks_server.fetches == 1

    name = jwks_server.rotate()
    rotated = jwks_server.keys.sign(claims("g-1"), key=name)
    login = await result(
        core.users.login({"provider": "google", "client_id": "g-1", "id_token": rotated})
    )

    assert login.oauth.client_id == "g-1"
    assert jwks_server.fetches == 2
    # ... and kept: the next token of that key needs no fetch.
    again = jwks_server.keys.sign(claims("g-1"), key=name)
    await result(core.users.login({"provider": "google", "client_id": "g-1", "id_token": again}))
    assert jwks_server.fetches == 2


async def test_an_oidc_login_without_id_token_is_625(start: Start, jwks_server: JwksServer) -> None:
    _, core = await start(google=oidc(jwks_server))
    await linked_user(
        core, "google", {"client_id": "g-1", "id_token": jwks_server.keys.sign(claims("g-1"))}
    )

    for params in (
        {"provider": "google", "client_id": "g-1"},
        {"provider": "google", "client_id": "g-1", "access_token": "ya29.anything"},
    ):
        assert await refused(core.users.login(params)) == (625, PROOF_REJECTED)


async def test_a_valid_id_token_of_an_identity_nobody_linked_is_624(
    start: Start, jwks_server: JwksServer, db_path: Path
) -> None:
    _, core = await start(google=oidc(jwks_server))

    status, error = await refused(
        core.users.login(
            {
                "provider": "google",
                "client_id": "g-9",
                "id_token": jwks_server.keys.sign(claims("g-9")),
            }
        )
    )

    assert (status, error) == (624, NOT_LINKED)
    assert count(db_path, "SELECT count(*) FROM users") == 0


@pytest.mark.parametrize(
    ("token_claims", "username", "email"),
    [
        (
            {"preferred_username": "gamer", "email": "gamer@x.org", "email_verified": True},
            "gamer",
            "gamer@x.org",
        ),
        (
            {"preferred_username": "gamer", "email": "gamer@x.org", "email_verified": False},
            "gamer",
            None,
        ),
        ({"email": "tina@x.org", "email_verified": True}, "tina@x.org", "tina@x.org"),
        # Apple says "true" as a string.
        ({"email": "tina@x.org", "email_verified": "true"}, "tina@x.org", "tina@x.org"),
        # An address nobody verified is neither kept nor published as the name.
        ({"email": "tina@x.org", "email_verified": None}, r"google-[0-9a-f]{12}", None),
    ],
    ids=["verified", "unverified", "email-as-name", "verified-as-string", "no-verified-claim"],
)
async def test_oidc_signup_creates_a_user_from_the_token_and_logs_it_in(
    start: Start,
    jwks_server: JwksServer,
    db_path: Path,
    token_claims: dict[str, Any],
    username: str,
    email: str | None,
) -> None:
    running, core = await start(google=oidc(jwks_server, signup=True))
    params = {"provider": "google", "client_id": "g-new"}

    first = await result(
        core.users.login(
            {**params, "id_token": jwks_server.keys.sign(claims("g-new", **token_claims))}
        )
    )

    assert re.fullmatch(username, first.username), first.username
    assert first.email == email
    assert (first.active, first.validated, first.group) == (True, True, None)
    assert first.oauth == corelogin.OAuth("google", "g-new", None, None, False)
    assert core.users.logged_in_user == first
    assert len(await running.store.login_events(first.user_id)) == 1
    second = await result(
        core.users.login({**params, "id_token": jwks_server.keys.sign(claims("g-new"))})
    )
    assert second.user_id == first.user_id
    assert count(db_path, "SELECT count(*) FROM users") == 1
    assert count(db_path, "SELECT count(*) FROM provider_links") == 1
    # The user has no password: no password logs it in.
    for password in ("x", PASSWORD):
        event = await core.users.login({"username": username, "password": password})
        assert event.status == 603


async def test_oidc_signup_makes_a_taken_username_unique_and_leaves_a_taken_email_alone(
    start: Start, jwks_server: JwksServer, db_path: Path
) -> None:
    _, core = await start(google=oidc(jwks_server, signup=True))
    donna = await make_user(core, "Donna", email="donna@x.org")

    login = await result(
        core.users.login(
            {
                "provider": "google",
                "client_id": "g-new",
                "id_token": jwks_server.keys.sign(
                    claims(
                        "g-new",
                        preferred_username="donna",
                        email="DONNA@x.org",
                        email_verified=True,
                    )
                ),
            }
        )
    )

    assert login.user_id != donna.user_id
    assert login.username.lower().startswith("donna-")
    assert login.email is None  # the address is Donna's
    assert count(db_path, "SELECT count(*) FROM users") == 2
    # Donna herself is untouched and still logs in by password.
    mine = await result(core.users.login({"email": "donna@x.org", "password": PASSWORD}))
    assert (mine.user_id, mine.username, mine.oauth) == (donna.user_id, "Donna", None)


async def test_oidc_signup_keeps_a_free_username_when_only_the_email_is_taken(
    start: Start, jwks_server: JwksServer
) -> None:
    _, core = await start(google=oidc(jwks_server, signup=True))
    await make_user(core, "Donna", email="donna@x.org")

    login = await result(
        core.users.login(
            {
                "provider": "google",
                "client_id": "g-new",
                "id_token": jwks_server.keys.sign(
                    claims(
                        "g-new",
                        preferred_username="gamer",
                        email="donna@x.org",
                        email_verified=True,
                    )
                ),
            }
        )
    )

    assert login.email is None
    assert login.username == "gamer"


async def test_oidc_signup_without_name_claims_makes_up_a_username(
    start: Start, jwks_server: JwksServer
) -> None:
    _, core = await start(google=oidc(jwks_server, signup=True))

    login = await result(
        core.users.login(
            {
                "provider": "google",
                "client_id": "g-new",
                "id_token": jwks_server.keys.sign(claims("g-new", email=None)),
            }
        )
    )

    assert login.username.startswith("google-")
    assert login.email is None


async def test_oidc_signup_never_makes_a_username_with_a_space_at_an_end(
    start: Start, jwks_server: JwksServer
) -> None:
    _, core = await start(google=oidc(jwks_server, signup=True))
    long_name = "a" * 63 + " b"

    login = await result(
        core.users.login(
            {
                "provider": "google",
                "client_id": "g-new",
                "id_token": jwks_server.keys.sign(claims("g-new", preferred_username=long_name)),
            }
        )
    )

    assert login.username == login.username.strip()


async def test_concurrent_oidc_signups_of_one_identity_create_one_user(
    start: Start, jwks_server: JwksServer, db_path: Path
) -> None:
    _, core = await start(google=oidc(jwks_server, signup=True))
    params = {"provider": "google", "client_id": "g-new"}

    events = await asyncio.gather(
        *(
            core.users.login({**params, "id_token": jwks_server.keys.sign(claims("g-new"))})
            for _ in range(10)
        )
    )

    assert [event.status for event in events] == [None] * 10
    assert len({event.result.user_id for event in events}) == 1
    assert count(db_path, "SELECT count(*) FROM users") == 1


@pytest.mark.parametrize("mode", ["slow", "500", "garbage"])
async def test_a_jwks_that_does_not_answer_well_is_625_and_never_hangs(
    start: Start, jwks_server: JwksServer, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    _, core = await start(google=oidc(jwks_server, timeout_seconds=0.5))
    jwks_server.mode = mode  # type: ignore[assignment]
    began = time.monotonic()

    async with asyncio.timeout(5):
        status, error = await refused(
            core.users.login(
                {
                    "provider": "google",
                    "client_id": "g-1",
                    "id_token": jwks_server.keys.sign(claims("g-1")),
                }
            )
        )

    assert (status, error) == (625, PROOF_REJECTED)
    assert time.monotonic() - began < 3
    assert jwks_server.fetches == 1
    assert no_server_errors(caplog) == []


# == token ===================================================================================


async def test_token_policy_logs_in_with_the_linked_access_token(
    start: Start, db_path: Path
) -> None:
    running, core = await start(facebook={"policy": "token"})
    uid = await linked_user(
        core,
        "facebook",
        {"client_id": "fb-1", "access_token": "EAAB-token-1", "access_token_expiry": FUTURE},
    )

    login = await result(
        core.users.login(
            {"provider": corelogin.FACEBOOK, "client_id": "fb-1", "access_token": "EAAB-token-1"}
        )
    )

    assert login.user_id == uid
    assert login.oauth == corelogin.OAuth("facebook", "fb-1", "EAAB-token-1", FUTURE, False)
    assert len(await running.store.login_events(uid)) == 2


async def test_token_policy_refuses_a_wrong_token_and_an_unlinked_identity_alike(
    start: Start,
) -> None:
    running, owner = await start(facebook={"policy": "token"})
    await linked_user(owner, "facebook", {"client_id": "fb-1", "access_token": "EAAB-token-1"})

    async with corelogin.init(running.url, APP_KEY) as core:
        wrong = await refused(
            core.users.login(
                {"provider": "facebook", "client_id": "fb-1", "access_token": "EAAB-x"}
            )
        )
        prefix = await refused(
            core.users.login({"provider": "facebook", "client_id": "fb-1", "access_token": "EAAB"})
        )
        missing = await refused(core.users.login({"provider": "facebook", "client_id": "fb-1"}))
        unlinked = await refused(
            core.users.login(
                {"provider": "facebook", "client_id": "fb-2", "access_token": "EAAB-token-1"}
            )
        )

        assert wrong == (625, PROOF_REJECTED)
        assert prefix == wrong
        assert missing == wrong
        assert unlinked == wrong  # nothing tells whether fb-2 is linked
        assert core.users.logged_in_user is None


async def test_token_policy_refuses_a_link_without_a_token(start: Start) -> None:
    _, core = await start(facebook={"policy": "token"})
    await linked_user(core, "facebook", {"client_id": "fb-1"})

    assert await refused(
        core.users.login(
            {
                "provider": "facebook",
                "client_id": "fb-1",
                "access_token": "corelogin: no access token is linked",
            }
        )
    ) == (625, PROOF_REJECTED)


async def test_an_expired_linked_token_is_refused_until_its_expiry_is_renewed(
    start: Start,
) -> None:
    _, core = await start(facebook={"policy": "token"})
    uid = await linked_user(
        core,
        "facebook",
        {"client_id": "fb-1", "access_token": "EAAB-token-1", "access_token_expiry": PAST},
    )
    base = {"user_id": uid, "provider": "facebook"}
    params = {"provider": "facebook", "client_id": "fb-1", "access_token": "EAAB-token-1"}

    assert await result(core.users.access_token_expired(base)) == {"expired": True}
    assert await refused(core.users.login(params)) == (625, PROOF_REJECTED)

    # The refused login ended nothing: the password session still acts.
    renewed = await result(core.users.update_token_expiry({**base, "expiry": FUTURE}))
    assert renewed.access_token_expired is False
    assert await result(core.users.access_token_expired(base)) == {"expired": False}
    login = await result(core.users.login(params))
    assert login.oauth.access_token_expired is False
    assert login.oauth.access_token_expiry == FUTURE

    # A renewal with a new token: only the new one logs in.
    await result(core.users.update_token_expiry({**base, "expiry": FUTURE, "token": "EAAB-2"}))
    assert await refused(core.users.login(params)) == (625, PROOF_REJECTED)
    assert (await result(core.users.login({**params, "access_token": "EAAB-2"}))).user_id == uid


async def test_a_link_logs_in_only_in_its_own_scope(start: Start) -> None:
    running, core = await start(facebook={"policy": "token"})
    await linked_user(core, "facebook", {"client_id": "fb-1", "access_token": "EAAB-token-1"})
    params = {"provider": "facebook", "client_id": "fb-1", "access_token": "EAAB-token-1"}

    async with corelogin.init(running.url, APP_KEY, scope="other") as elsewhere:
        assert await refused(elsewhere.users.login(params)) == (625, PROOF_REJECTED)


async def test_a_deactivated_user_logs_in_through_a_provider_unvalidated_and_without_an_event(
    start: Start, admin_for: Callable[[RunningServer], corelogin.Core]
) -> None:
    running, core = await start(facebook={"policy": "token"})
    uid = await linked_user(core, "facebook", {"client_id": "fb-1", "access_token": "EAAB-1"})
    await result(admin_for(running).users.update({"user_id": uid, "update": {"active": False}}))
    events = len(await running.store.login_events(uid))

    login = await result(
        core.users.login({"provider": "facebook", "client_id": "fb-1", "access_token": "EAAB-1"})
    )

    assert (login.user_id, login.active, login.validated) == (uid, False, False)
    assert login.oauth.client_id == "fb-1"
    assert len(await running.store.login_events(uid)) == events


# == introspect ==============================================================================


@pytest.fixture
async def fake() -> AsyncIterator[IntrospectionServer]:
    async with IntrospectionServer(
        tokens={"tok-1": "fb-1", "tok-2": "fb-2"}, app_id="app-1"
    ) as server:
        yield server


def introspect(fake: IntrospectionServer, format: str = "rfc7662") -> dict[str, Any]:
    if format == "facebook":
        return {
            "policy": "introspect",
            "introspect_format": "facebook",
            "introspect_url": fake.facebook_url,
            "client_id": "app-1",
            "client_secret": "app-secret-1",
            "timeout_seconds": 0.5,
        }
    return {"policy": "introspect", "introspect_url": fake.url, "timeout_seconds": 0.5}


@pytest.mark.parametrize("format", ["rfc7662", "facebook"])
async def test_introspect_policy_logs_in_with_a_token_the_provider_vouches_for(
    start: Start, fake: IntrospectionServer, format: str
) -> None:
    _, core = await start(facebook=introspect(fake, format))
    uid = await linked_user(core, "facebook", {"client_id": "fb-1", "access_token": "tok-1"})
    asked = len(fake.requests)

    login = await result(
        core.users.login({"provider": "facebook", "client_id": "fb-1", "access_token": "tok-1"})
    )

    assert login.user_id == uid
    assert login.oauth == corelogin.OAuth("facebook", "fb-1", "tok-1", None, False)
    assert len(fake.requests) == asked + 1
    if format == "facebook":
        assert fake.requests[-1].params["access_token"] == "app-1|app-secret-1"


@pytest.mark.parametrize("format", ["rfc7662", "facebook"])
async def test_linking_under_introspect_needs_a_token_of_that_identity(
    start: Start, fake: IntrospectionServer, format: str
) -> None:
    _, core = await start(facebook=introspect(fake, format))
    user = await make_user(core)
    await result(core.users.login({"username": "Donna", "password": PASSWORD}))
    base = {"user_id": user.user_id, "provider": "facebook"}

    for auth in (
        {"client_id": "fb-1"},
        {"client_id": "fb-1", "access_token": "tok-2"},  # fb-2's token
        {"client_id": "fb-1", "access_token": "tok-unknown"},
    ):
        assert await refused(core.users.add_auth_provider({**base, "auth": auth})) == (
            625,
            PROOF_REJECTED,
        ), auth
    assert (await refused(core.users.get_auth_provider(base)))[0] == 624


@pytest.mark.parametrize("format", ["rfc7662", "facebook"])
@pytest.mark.parametrize("mode", ["invalid", "other identity", "slow", "garbage", "500", "shape"])
async def test_introspect_failures_are_625_and_never_hang(
    start: Start,
    fake: IntrospectionServer,
    caplog: pytest.LogCaptureFixture,
    format: str,
    mode: str,
) -> None:
    _, core = await start(facebook=introspect(fake, format))
    await linked_user(core, "facebook", {"client_id": "fb-1", "access_token": "tok-1"})
    token = {"invalid": "tok-unknown", "other identity": "tok-2"}.get(mode, "tok-1")
    if mode not in ("invalid", "other identity"):
        fake.mode = mode  # type: ignore[assignment]
    began = time.monotonic()

    async with asyncio.timeout(5):
        status, error = await refused(
            core.users.login({"provider": "facebook", "client_id": "fb-1", "access_token": token})
        )

    assert (status, error) == (625, PROOF_REJECTED)
    assert time.monotonic() - began < 3  # timeout_seconds is 0.5
    assert no_server_errors(caplog) == []


async def test_a_facebook_token_issued_to_another_app_is_625(
    start: Start, fake: IntrospectionServer
) -> None:
    _, core = await start(facebook=introspect(fake, "facebook"))
    await linked_user(core, "facebook", {"client_id": "fb-1", "access_token": "tok-1"})

    fake.app_id = "another-app"
    status, error = await refused(
        core.users.login({"provider": "facebook", "client_id": "fb-1", "access_token": "tok-1"})
    )

    assert (status, error) == (625, PROOF_REJECTED)


async def test_introspect_login_of_a_vouched_identity_nobody_linked_is_624(
    start: Start, fake: IntrospectionServer
) -> None:
    _, core = await start(facebook=introspect(fake))

    status, _ = await refused(
        core.users.login({"provider": "facebook", "client_id": "fb-2", "access_token": "tok-2"})
    )

    assert status == 624


# == device ==================================================================================


async def test_first_device_login_signs_up_a_device_user_and_the_second_finds_it(
    start: Start, db_path: Path
) -> None:
    running, core = await start(openudid={"policy": "device", "signup": True})
    params = {"provider": corelogin.OPENUDID, "client_id": DEVICE_SECRET}

    first = await result(core.users.login(params))
    second = await result(core.users.login(params))

    assert second.user_id == first.user_id
    assert first.group == "device"
    assert (first.active, first.validated, first.email) == (True, True, None)
    oauth = first.oauth
    assert oauth.provider == "openudid"
    assert oauth.client_id.startswith("device-")
    assert DEVICE_SECRET not in oauth.client_id
    assert DEVICE_SECRET[:16] not in oauth.client_id
    assert (oauth.access_token, oauth.access_token_expiry, oauth.access_token_expired) == (
        None,
        None,
        False,
    )
    assert second.oauth == oauth
    assert count(db_path, "SELECT count(*) FROM users WHERE user_group = 'device'") == 1
    assert count(db_path, "SELECT count(*) FROM provider_links") == 1
    assert len(await running.store.login_events(first.user_id)) == 2
    # Another device is another user.
    other = await result(core.users.login({**params, "client_id": DEVICE_SECRET + "-2"}))
    assert other.user_id != first.user_id
    assert other.oauth.client_id != oauth.client_id


async def test_the_shown_device_identifier_is_not_a_secret_that_logs_in(start: Start) -> None:
    _, core = await start(openudid={"policy": "device"})
    first_core_user = await make_user(core)
    await result(core.users.login({"username": "Donna", "password": PASSWORD}))
    linked = await result(
        core.users.add_auth_provider(
            {
                "user_id": first_core_user.user_id,
                "provider": "openudid",
                "auth": {"client_id": DEVICE_SECRET},
            }
        )
    )
    assert linked.client_id.startswith("device-")
    assert DEVICE_SECRET not in linked.client_id

    login = await result(core.users.login({"provider": "openudid", "client_id": DEVICE_SECRET}))
    assert login.user_id == first_core_user.user_id
    assert login.oauth == linked

    # The identifier the results show is no key to the account.
    status, _ = await refused(
        core.users.login({"provider": "openudid", "client_id": linked.client_id})
    )
    assert status == 624


@pytest.mark.parametrize("secret", ["x", "0123456789abcde"])
async def test_a_device_secret_shorter_than_16_characters_is_801(
    start: Start, db_path: Path, secret: str
) -> None:
    _, core = await start(openudid={"policy": "device", "signup": True})

    status, error = await refused(core.users.login({"provider": "openudid", "client_id": secret}))

    assert status == 801
    assert secret not in str(error)
    assert count(db_path, "SELECT count(*) FROM users") == 0
    ok = await result(core.users.login({"provider": "openudid", "client_id": "0123456789abcdef"}))
    assert ok.group == "device"


async def test_a_device_nobody_linked_is_624_without_signup(start: Start, db_path: Path) -> None:
    _, core = await start(openudid={"policy": "device"})

    status, _ = await refused(
        core.users.login({"provider": "openudid", "client_id": DEVICE_SECRET})
    )

    assert status == 624
    assert count(db_path, "SELECT count(*) FROM users") == 0


async def test_20_concurrent_first_logins_of_one_device_create_one_user(
    start: Start, db_path: Path
) -> None:
    running, core = await start(openudid={"policy": "device", "signup": True})
    params = {"provider": "openudid", "client_id": DEVICE_SECRET}

    async with asyncio.timeout(30):
        events = await asyncio.gather(*(core.users.login(params) for _ in range(20)))
        async with (
            corelogin.init(running.url, APP_KEY) as second,
            corelogin.init(running.url, APP_KEY) as third,
        ):
            more = await asyncio.gather(
                *(c.users.login(params) for c in (second, third) for _ in range(5))
            )

    assert [event.status for event in events + more] == [None] * 30
    assert len({event.result.user_id for event in events + more}) == 1
    assert count(db_path, "SELECT count(*) FROM users") == 1
    assert count(db_path, "SELECT count(*) FROM users WHERE user_group = 'device'") == 1
    assert count(db_path, "SELECT count(*) FROM provider_links") == 1


# == trust_client_id ========================================================================


async def test_trust_client_id_logs_in_on_the_client_id_alone_and_warns_at_start(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="corelogin.server")
    _, core = await start(legacy={"policy": "trust_client_id"})

    warnings = [
        r for r in caplog.records if r.name == "corelogin.server" and "INSECURE" in r.getMessage()
    ]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "legacy" in warnings[0].getMessage()

    uid = await linked_user(core, "legacy", {"client_id": "fb-id-1234abcd"})
    login = await result(core.users.login({"provider": "legacy", "client_id": "fb-id-1234abcd"}))
    assert login.user_id == uid
    assert login.oauth.client_id == "fb-id-1234abcd"
    assert (await refused(core.users.login({"provider": "legacy", "client_id": "other"})))[0] == 624


async def test_no_insecure_warning_without_trust_client_id(
    start: Start, caplog: pytest.LogCaptureFixture, jwks_server: JwksServer
) -> None:
    caplog.set_level(logging.WARNING, logger="corelogin.server")

    await start(
        google=oidc(jwks_server),
        facebook={"policy": "token"},
        openudid={"policy": "device", "signup": True},
    )

    assert "INSECURE" not in caplog.text


# == parameters and providers ===============================================================


@pytest.mark.parametrize("provider", ["myspace", "GOOGLE", "facebook"])
async def test_a_provider_the_server_does_not_enable_is_626(
    start: Start, jwks_server: JwksServer, provider: str
) -> None:
    _, core = await start(google=oidc(jwks_server))

    status, _ = await refused(
        core.users.login({"provider": provider, "client_id": "x", "access_token": "y"})
    )

    assert status == 626


async def test_a_server_without_providers_answers_626_for_every_provider_call(
    start: Start, admin_for: Callable[[RunningServer], corelogin.Core]
) -> None:
    running, core = await start()
    admin = admin_for(running)
    uid = (await make_user(admin)).user_id
    base = {"user_id": uid, "provider": "facebook"}

    statuses = [
        (await core.users.login({"provider": "facebook", "client_id": "x"})).status,
        (await admin.users.add_auth_provider({**base, "auth": {"client_id": "x"}})).status,
        (await admin.users.get_auth_provider(base)).status,
        (await admin.users.update_auth_provider({**base, "update": {}})).status,
        (await admin.users.remove_auth_provider(base)).status,
        (await admin.users.access_token_expired(base)).status,
        (await admin.users.update_token_expiry({**base, "expiry": FUTURE})).status,
    ]

    assert statuses == [626] * 7


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"provider": "facebook"}, 804),
        ({"provider": "facebook", "access_token": "t"}, 804),
        ({"provider": "facebook", "client_id": ""}, 805),
        ({"provider": "facebook", "client_id": 12345}, 801),
        ({"username": "Donna", "provider": "facebook", "client_id": "fb-1"}, 801),
        ({"email": "d@x.org", "provider": "facebook", "client_id": "fb-1"}, 801),
        ({"provider": "face book", "client_id": "fb-1"}, 801),
        ({"provider": "facebook", "client_id": "fb-1", "id_token": 5}, 801),
    ],
)
async def test_provider_login_parameters_are_checked(
    start: Start, params: dict[str, Any], status: int
) -> None:
    _, core = await start(facebook={"policy": "token"})

    assert (await refused(core.users.login(params)))[0] == status


# == secrets =================================================================================


async def test_no_token_or_device_secret_leaks_into_logs_reprs_or_the_database(
    start: Start,
    jwks_server: JwksServer,
    fake: IntrospectionServer,
    caplog: pytest.LogCaptureFixture,
    db_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    _, core = await start(
        google=oidc(jwks_server, signup=True),
        facebook={"policy": "token"},
        openudid={"policy": "device", "signup": True},
        vk=introspect(fake),
        fb=introspect(fake, "facebook"),
    )
    id_tokens = [jwks_server.keys.sign(claims("g-1")) for _ in range(3)]
    id_tokens.append(jwks_server.keys.sign(claims("g-new", preferred_username="newbie")))
    bad_id_token = jwks_server.keys.sign(claims("g-2"))
    access_token = "EAAB-secret-access-token-123"
    wrong_access_token = "EAAB-wrong-access-token-456"
    short_secret = "tiny-secret-15c"
    introspected = "tok-1"
    events: list[corelogin.Event] = []

    async def call(request: corelogin.Request) -> corelogin.Event:
        event = await request
        events.append(event)
        return event

    uid = await linked_user(
        core, "google", {"client_id": "g-1", "id_token": id_tokens[0], "access_token": "ya29-x"}
    )
    base = {"user_id": uid}
    await call(
        core.users.add_auth_provider(
            {
                **base,
                "provider": "facebook",
                "auth": {"client_id": "fb-1", "access_token": access_token},
            }
        )
    )
    await call(
        core.users.add_auth_provider(
            {
                **base,
                "provider": "vk",
                "auth": {"client_id": "fb-1", "access_token": introspected},
            }
        )
    )
    await call(core.users.get_auth_provider({**base, "provider": "facebook"}))
    await call(
        core.users.update_token_expiry(
            {**base, "provider": "facebook", "expiry": FUTURE, "token": access_token}
        )
    )
    token_login = await call(
        core.users.login(
            {"provider": "facebook", "client_id": "fb-1", "access_token": access_token}
        )
    )
    await call(
        core.users.login(
            {"provider": "facebook", "client_id": "fb-1", "access_token": wrong_access_token}
        )
    )
    await call(
        core.users.login({"provider": "google", "client_id": "g-1", "id_token": id_tokens[1]})
    )
    await call(
        core.users.login({"provider": "google", "client_id": "g-1", "id_token": bad_id_token})
    )
    await call(
        core.users.login({"provider": "google", "client_id": "g-1", "id_token": id_tokens[2]})
    )
    await call(
        core.users.login({"provider": "google", "client_id": "g-new", "id_token": id_tokens[3]})
    )
    await call(core.users.login({"provider": "vk", "client_id": "fb-1", "access_token": "tok-1"}))
    await call(core.users.login({"provider": "vk", "client_id": "fb-1", "access_token": "tok-9"}))
    await call(
        core.users.add_auth_provider(
            {**base, "provider": "fb", "auth": {"client_id": "fb-2", "access_token": "tok-2"}}
        )
    )
    await call(core.users.login({"provider": "fb", "client_id": "fb-2", "access_token": "tok-2"}))
    await call(core.users.login({"provider": "openudid", "client_id": DEVICE_SECRET}))
    await call(core.users.login({"provider": "openudid", "client_id": DEVICE_SECRET}))
    await call(core.users.login({"provider": "openudid", "client_id": short_secret}))
    statuses = [event.status for event in events]
    assert statuses == [None] * 5 + [625, None, 625, None, None, None, 625] + [None] * 4 + [801]

    # The provider table hides the access token when printed, but holds it as data.
    printed = [repr(token_login), repr(token_login.result), str(token_login.result)]
    printed += [repr(token_login.result.oauth), str(token_login.result.oauth)]
    assert token_login.result.oauth.access_token == access_token
    for text in printed:
        assert access_token not in text
    for event in events:
        assert access_token not in repr(event)
        assert access_token not in str(event.error)

    secrets = [
        *id_tokens,
        bad_id_token,
        access_token,
        wrong_access_token,
        DEVICE_SECRET,
        short_secret,
        introspected,
        "tok-2",
        "app-secret-1",
    ]
    signatures = [token.rsplit(".", 1)[1] for token in (*id_tokens, bad_id_token)]
    logged = [caplog.text]
    for record in caplog.records:
        logged.append(record.getMessage())
        logged.extend(repr(arg) for arg in (record.args or ()))
    assert any("proof rejected" in text for text in logged)  # the log did capture the session
    for text in logged:
        for secret in (*secrets, *signatures):
            assert secret not in text

    stored = b"".join(
        path.read_bytes()
        for path in (db_path, db_path.with_name(db_path.name + "-wal"))
        if path.exists()
    )
    assert access_token.encode() in stored  # kept as given, by design: the read sees data
    for secret in (*id_tokens, bad_id_token, DEVICE_SECRET):
        assert secret.encode() not in stored
    for signature in signatures:
        assert signature.encode() not in stored


async def test_a_device_user_sets_a_first_password_without_a_current_one(start: Start) -> None:
    """A user a provider signed up has no password to give: their first one needs none, and
    from then on they log in by name too (and a second change needs the current one)."""
    _, core = await start(openudid={"policy": "device", "signup": True})
    device = await result(core.users.login({"provider": "openudid", "client_id": DEVICE_SECRET}))

    first = await core.users.update({"user_id": device.user_id, "update": {"password": PASSWORD}})
    again = await core.users.update(
        {"user_id": device.user_id, "update": {"password": "another fine horse"}}
    )
    by_name = await core.users.login({"username": device.username, "password": PASSWORD})

    assert first.error is None, first
    assert again.status == 804
    assert by_name.error is None, by_name
    assert by_name.result.user_id == device.user_id


async def test_an_introspected_login_keeps_the_token_that_proved_it(
    start: Start, fake: IntrospectionServer
) -> None:
    """The app calls the provider with the token in ``oauth``: the one it just logged in with,
    not the one the link was made with."""
    fake.tokens.update({"old-token": "fb-1", "new-token": "fb-1"})
    _, core = await start(facebook=introspect(fake))
    user = await make_user(core, "Donna")
    await result(core.users.login({"username": "Donna", "password": PASSWORD}))
    auth = {"client_id": "fb-1", "access_token": "old-token"}
    await result(
        core.users.add_auth_provider(
            {"user_id": user.user_id, "provider": "facebook", "auth": auth}
        )
    )

    login = await result(
        core.users.login({"provider": "facebook", "client_id": "fb-1", "access_token": "new-token"})
    )
    linked = await result(
        core.users.get_auth_provider({"user_id": user.user_id, "provider": "facebook"})
    )

    assert login.oauth.access_token == "new-token"
    assert linked.access_token == "new-token"
