"""The introspect proof policy against a real (fake) introspection endpoint over HTTP."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from corelogin.server.proof.base import Identity, ProofRejected
from corelogin.server.proof.introspect import MAX_ANSWER_BYTES, Introspector
from tests.introspection import IntrospectionServer
from tests.netfaults import free_port

TOKEN = "at-7f3c9e1b2a4d-secret-token"
SECRET = "cs-5e8a1d-very-secret"
CLIENT_ID = "app-1"


@pytest.fixture
async def fake() -> AsyncIterator[IntrospectionServer]:
    async with IntrospectionServer(tokens={TOKEN: "user-42"}) as server:
        yield server


@pytest.fixture
async def rfc(fake: IntrospectionServer) -> AsyncIterator[Introspector]:
    introspector = Introspector(url=fake.url, timeout=2.0)
    yield introspector
    await introspector.close()


@pytest.fixture
async def facebook(fake: IntrospectionServer) -> AsyncIterator[Introspector]:
    introspector = Introspector(
        url=fake.facebook_url,
        format="facebook",
        client_id=CLIENT_ID,
        client_secret=SECRET,
        timeout=2.0,
    )
    yield introspector
    await introspector.close()


async def rejected(introspector: Introspector, token: str = TOKEN) -> str:
    with pytest.raises(ProofRejected) as info:
        await introspector.verify(token)
    return str(info.value)


# --- RFC 7662 --------------------------------------------------------------------------------


async def test_valid_token_gives_identity(fake: IntrospectionServer, rfc: Introspector) -> None:
    identity = await rfc.verify(TOKEN)
    assert isinstance(identity, Identity)
    assert identity.subject == "user-42"
    assert identity.claims["active"] is True
    assert identity.claims["scope"] == "openid profile"
    (request,) = fake.requests
    assert request.method == "POST"
    assert request.path == "/introspect"
    assert request.params == {"token": TOKEN, "token_type_hint": "access_token"}
    assert request.authorization is None


async def test_unknown_token_is_rejected(rfc: Introspector) -> None:
    assert "not active" in await rejected(rfc, "some-other-token")


async def test_expired_token_is_rejected(fake: IntrospectionServer, rfc: Introspector) -> None:
    fake.expires[TOKEN] = time.time() - 10
    assert "expired" in await rejected(rfc)
    fake.expires[TOKEN] = time.time() + 600
    assert (await rfc.verify(TOKEN)).subject == "user-42"


async def test_basic_auth_is_sent() -> None:
    secret = "s3cret:with/odd+chars"
    async with IntrospectionServer(
        tokens={TOKEN: "user-42"}, credentials=("client:one", secret)
    ) as fake:
        introspector = Introspector(url=fake.url, client_id="client:one", client_secret=secret)
        try:
            assert (await introspector.verify(TOKEN)).subject == "user-42"
            assert fake.requests[-1].basic_auth == ("client:one", secret)
            wrong = Introspector(url=fake.url, client_id="client:one", client_secret="nope")
            try:
                assert "HTTP 401" in await rejected(wrong)
            finally:
                await wrong.close()
        finally:
            await introspector.close()


@pytest.mark.parametrize(
    ("mode", "reason"),
    [("garbage", "no JSON"), ("500", "HTTP 500"), ("shape", "not a JSON object")],
)
async def test_bad_answers_are_rejected(
    fake: IntrospectionServer, rfc: Introspector, mode: Any, reason: str
) -> None:
    fake.mode = mode
    assert reason in await rejected(rfc)


@pytest.mark.parametrize(
    "answer",
    [
        None,
        [],
        "active",
        {},
        {"active": "true", "sub": "user-42"},
        {"active": 1, "sub": "user-42"},
        {"active": True},
        {"active": True, "sub": ""},
        {"active": True, "sub": 42},
        {"active": True, "sub": "user-42", "exp": "tomorrow"},
        {"active": True, "sub": "user-42", "exp": True},
        {"active": True, "sub": "user-42", "exp": float("inf")},
        {"active": True, "sub": "user-42", "exp": float("nan")},
        {"active": True, "sub": "user-42", "exp": None},
    ],
)
async def test_wrong_shapes_are_rejected(
    fake: IntrospectionServer, rfc: Introspector, answer: Any
) -> None:
    fake.mode = "fixed"
    fake.answer = answer
    await rejected(rfc)


async def test_deeply_nested_json_is_rejected(fake: IntrospectionServer, rfc: Introspector) -> None:
    depth = 30_000  # fits in 64 KiB; too deep for the json module
    fake.mode = "fixed"
    fake.answer = b"[" * depth + b"]" * depth
    assert "no JSON" in await rejected(rfc)


@pytest.mark.parametrize("mode", ["big", "big-chunked"])
async def test_oversized_answer_is_rejected(
    fake: IntrospectionServer, rfc: Introspector, mode: Any
) -> None:
    fake.mode = mode
    assert f"more than {MAX_ANSWER_BYTES} bytes" in await rejected(rfc)
    fake.mode = "ok"  # the session is still fine afterwards
    assert (await rfc.verify(TOKEN)).subject == "user-42"


async def test_slow_endpoint_is_rejected_within_the_timeout(fake: IntrospectionServer) -> None:
    fake.mode = "slow"
    introspector = Introspector(url=fake.url, timeout=0.5)
    try:
        started = time.monotonic()
        assert "within 0.5s" in await rejected(introspector)
        assert time.monotonic() - started < 1.5
    finally:
        await introspector.close()


async def test_nothing_listening_is_rejected_quickly() -> None:
    introspector = Introspector(url=f"http://127.0.0.1:{free_port()}/introspect", timeout=5.0)
    try:
        started = time.monotonic()
        assert "ClientConnectorError" in await rejected(introspector)
        assert time.monotonic() - started < 2.0
    finally:
        await introspector.close()


async def test_redirects_are_not_followed(fake: IntrospectionServer) -> None:
    # A 404 from the wrong path stands for any non-2xx; a redirect answer is one too.
    introspector = Introspector(url=fake.base_url + "/nowhere")
    try:
        assert "HTTP 404" in await rejected(introspector)
    finally:
        await introspector.close()


async def test_concurrent_verifications(fake: IntrospectionServer, rfc: Introspector) -> None:
    for n in range(10):
        fake.tokens[f"token-{n}"] = f"user-{n}"
    identities = await asyncio.gather(*(rfc.verify(f"token-{n}") for n in range(10)))
    assert [identity.subject for identity in identities] == [f"user-{n}" for n in range(10)]
    assert len(fake.requests) == 10


async def test_close_then_verify_again(rfc: Introspector) -> None:
    assert (await rfc.verify(TOKEN)).subject == "user-42"
    await rfc.close()
    await rfc.close()
    assert (await rfc.verify(TOKEN)).subject == "user-42"


async def test_empty_token_is_rejected_without_asking(
    fake: IntrospectionServer, rfc: Introspector
) -> None:
    await rejected(rfc, "")
    assert fake.requests == []


# --- Facebook --------------------------------------------------------------------------------


async def test_facebook_valid_token(fake: IntrospectionServer, facebook: Introspector) -> None:
    identity = await facebook.verify(TOKEN)
    assert identity.subject == "user-42"
    assert identity.claims["app_id"] == CLIENT_ID
    (request,) = fake.requests
    assert request.method == "GET"
    assert request.params == {"input_token": TOKEN, "access_token": f"{CLIENT_ID}|{SECRET}"}


async def test_facebook_invalid_token(facebook: Introspector) -> None:
    assert "not valid (error 190)" in await rejected(facebook, "some-other-token")


async def test_facebook_token_of_another_app(
    fake: IntrospectionServer, facebook: Introspector
) -> None:
    fake.app_id = "app-2"
    assert "another Facebook app" in await rejected(facebook)


async def test_facebook_expiry(fake: IntrospectionServer, facebook: Introspector) -> None:
    fake.expires[TOKEN] = time.time() - 10
    assert "expired" in await rejected(facebook)
    fake.expires[TOKEN] = time.time() + 600
    assert (await facebook.verify(TOKEN)).subject == "user-42"
    fake.expires.pop(TOKEN)  # expires_at 0: never
    assert (await facebook.verify(TOKEN)).claims["expires_at"] == 0


async def test_facebook_wrong_app_secret() -> None:
    async with IntrospectionServer(tokens={TOKEN: "u"}, credentials=(CLIENT_ID, SECRET)) as fake:
        introspector = Introspector(
            url=fake.facebook_url, format="facebook", client_id=CLIENT_ID, client_secret="bad"
        )
        try:
            assert "HTTP 400" in await rejected(introspector)
        finally:
            await introspector.close()


@pytest.mark.parametrize(
    "answer",
    [
        {"data": []},
        {"data": {"is_valid": "true", "user_id": "1", "app_id": CLIENT_ID}},
        {"data": {"is_valid": True, "user_id": 1, "app_id": CLIENT_ID}},
        {"data": {"is_valid": True, "user_id": "", "app_id": CLIENT_ID}},
        {"data": {"is_valid": True, "user_id": "1"}},
        {"data": {"is_valid": True, "user_id": "1", "app_id": 1}},
        {"data": {"is_valid": True, "user_id": "1", "app_id": CLIENT_ID, "expires_at": "0"}},
    ],
)
async def test_facebook_wrong_shapes(
    fake: IntrospectionServer, facebook: Introspector, answer: Any
) -> None:
    fake.mode = "fixed"
    fake.answer = answer
    await rejected(facebook)


async def test_facebook_shape_mode(fake: IntrospectionServer, facebook: Introspector) -> None:
    fake.mode = "shape"
    assert "no data object" in await rejected(facebook)


@pytest.mark.parametrize("mode", ["garbage", "500", "slow", "big", "big-chunked", "closed"])
async def test_token_and_secret_never_leak(
    fake: IntrospectionServer, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    caplog.set_level(logging.DEBUG)
    url = fake.facebook_url
    if mode == "closed":
        url = f"http://127.0.0.1:{free_port()}/debug_token"
    else:
        fake.mode = mode  # type: ignore[assignment]
    introspector = Introspector(
        url=url, format="facebook", client_id=CLIENT_ID, client_secret=SECRET, timeout=0.5
    )
    try:
        with pytest.raises(ProofRejected) as info:
            await introspector.verify(TOKEN)
    finally:
        await introspector.close()
    texts = [str(info.value), repr(info.value), caplog.text, repr(introspector)]
    texts += [str(arg) for record in caplog.records for arg in (record.args or ())]
    for text in texts:
        assert TOKEN not in text
        assert SECRET not in text
    # Nothing that may hold the URL rides along in a traceback either.
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__
    assert "introspection" in caplog.text  # the failure is logged, without the secrets


async def test_claims_never_echo_the_token(fake: IntrospectionServer, rfc: Introspector) -> None:
    fake.mode = "fixed"
    fake.answer = {"active": True, "sub": "user-42", "token": TOKEN}
    identity = await rfc.verify(TOKEN)
    assert "token" not in identity.claims


# --- Construction ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "ftp://example.org/introspect"}, "http"),
        ({"url": "example.org/introspect"}, "http"),
        ({"url": "https:///introspect"}, "host"),
        ({"url": "https://example.org:99999/"}, "valid URL"),
        ({"url": "https://user:pw@example.org/"}, "credentials"),
        ({"url": "https://x.org/", "format": "jwt"}, "format"),
        ({"url": "https://x.org/", "format": "facebook"}, "requires client_id"),
        ({"url": "https://x.org/", "client_id": "a"}, "both or neither"),
        ({"url": "https://x.org/", "client_secret": "b"}, "both or neither"),
        ({"url": "https://x.org/", "client_id": "", "client_secret": "b"}, "empty"),
        ({"url": "https://x.org/", "timeout": 0}, "timeout"),
        ({"url": "https://x.org/", "timeout": -1.0}, "timeout"),
        ({"url": "https://x.org/", "timeout": float("nan")}, "timeout"),
        ({"url": "https://x.org/", "timeout": float("inf")}, "timeout"),
    ],
)
def test_constructor_validates(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Introspector(**kwargs)


def test_constructor_needs_no_loop() -> None:
    introspector = Introspector(
        url="https://graph.facebook.com/debug_token",
        format="facebook",
        client_id=CLIENT_ID,
        client_secret=SECRET,
    )
    assert SECRET not in repr(introspector)
    assert introspector.timeout == 5.0


async def test_fixture_from_the_helper_module_starts_empty() -> None:
    async with IntrospectionServer() as server:
        assert server.tokens == {}
        assert server.url.startswith("http://127.0.0.1:")
        assert server.port != 0
