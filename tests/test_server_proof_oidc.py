"""The ``oidc`` proof: id_tokens checked against a real JWKS server over HTTP (tests/jwks.py)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from corelogin.server.proof.base import Identity, ProofRejected
from corelogin.server.proof.oidc import OidcVerifier
from tests.jwks import AUDIENCE, ISSUER, JwksServer, claims, make_key

Make = Callable[..., OidcVerifier]


@pytest.fixture
async def provider() -> AsyncIterator[JwksServer]:
    async with JwksServer() as server:
        yield server


@pytest.fixture
async def make(provider: JwksServer) -> AsyncIterator[Make]:
    """OidcVerifiers for `provider` (closed after the test); keywords override the defaults."""
    made: list[OidcVerifier] = []

    def factory(**overrides: Any) -> OidcVerifier:
        settings: dict[str, Any] = {
            "issuer": ISSUER,
            "audiences": [AUDIENCE],
            "jwks_url": provider.url,
            "timeout": 2.0,
        }
        settings.update(overrides)
        verifier = OidcVerifier(**settings)
        made.append(verifier)
        return verifier

    yield factory
    for verifier in made:
        await verifier.close()


@pytest.fixture
def verifier(make: Make) -> OidcVerifier:
    return make()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def hand_made(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    """A JWT built by hand, as an attacker would."""
    head = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())
    return head + "." + b64url(signature)


async def rejected(verifier: OidcVerifier, token: str) -> str:
    """The reason ``token`` is rejected (checking that the reason does not quote it)."""
    with pytest.raises(ProofRejected) as caught:
        await verifier.verify(token)
    reason = str(caught.value)
    assert token not in reason
    return reason


async def outcome(verifier: OidcVerifier, token: str) -> str:
    """The subject ``token`` proves, or the reason it is rejected."""
    try:
        return (await verifier.verify(token)).subject
    except ProofRejected as exc:
        return str(exc)


# --- Valid tokens ------------------------------------------------------------------------------


async def test_valid_rs256_token_gives_the_subject_and_claims(
    provider: JwksServer, verifier: OidcVerifier
) -> None:
    identity = await verifier.verify(provider.keys.sign(claims("user-1"), key="rsa"))
    assert isinstance(identity, Identity)
    assert identity.subject == "user-1"
    assert identity.claims["email"] == "user-1@example.org"
    assert identity.claims["email_verified"] is True
    assert identity.claims["iss"] == ISSUER


async def test_valid_es256_token_gives_the_subject(
    provider: JwksServer, verifier: OidcVerifier
) -> None:
    identity = await verifier.verify(provider.keys.sign(claims("user-2"), key="ec"))
    assert identity.subject == "user-2"


async def test_audience_list_in_token_matches_any_configured_audience(
    provider: JwksServer, make: Make
) -> None:
    verifier = make(audiences=["web-client", AUDIENCE])
    token = provider.keys.sign(claims("user-1", audience=["someone-else", AUDIENCE]))
    assert (await verifier.verify(token)).subject == "user-1"


async def test_keys_are_cached_between_verifications(
    provider: JwksServer, verifier: OidcVerifier
) -> None:
    for _ in range(5):
        await verifier.verify(provider.keys.sign(claims("user-1")))
    assert provider.fetches == 1


async def test_expired_cache_is_fetched_again(provider: JwksServer, make: Make) -> None:
    verifier = make(cache_seconds=0.0)
    await verifier.verify(provider.keys.sign(claims("user-1")))
    await verifier.verify(provider.keys.sign(claims("user-1")))
    assert provider.fetches == 2


# --- Signatures and algorithms -----------------------------------------------------------------


async def test_token_signed_by_another_key_with_the_same_kid_is_rejected(
    provider: JwksServer, verifier: OidcVerifier
) -> None:
    impostor = make_key("rsa", kid=provider.keys["rsa"].kid)
    token = provider.keys.sign(claims("user-1"), key=impostor)
    assert await rejected(verifier, token) == "id_token signature does not verify"


async def test_tampered_payload_is_rejected(provider: JwksServer, verifier: OidcVerifier) -> None:
    header, _, signature = provider.keys.sign(claims("user-1")).split(".")
    payload = b64url(json.dumps(claims("admin")).encode())
    reason = await rejected(verifier, f"{header}.{payload}.{signature}")
    assert reason == "id_token signature does not verify"


async def test_alg_none_token_is_rejected(provider: JwksServer, verifier: OidcVerifier) -> None:
    for alg in ("none", "None", "NONE"):
        header = {"alg": alg, "typ": "JWT", "kid": provider.keys["rsa"].kid}
        reason = await rejected(verifier, hand_made(header, claims("user-1")))
        assert "not allowed" in reason


async def test_hs256_signed_with_the_rsa_public_key_pem_is_rejected(
    provider: JwksServer, verifier: OidcVerifier
) -> None:
    """The classic key confusion: the public key's PEM used as an HMAC secret."""
    rsa_key = provider.keys["rsa"]
    header = {"alg": "HS256", "typ": "JWT", "kid": rsa_key.kid}
    unsigned = hand_made(header, claims("user-1")).rsplit(".", 1)[0]
    for secret in (rsa_key.public_pem(), json.dumps(rsa_key.public_jwk()).encode()):
        mac = hmac.new(secret, unsigned.encode("ascii"), hashlib.sha256).digest()
        reason = await rejected(verifier, unsigned + "." + b64url(mac))
        assert reason == "id_token alg 'HS256' is not allowed"


async def test_hs256_is_rejected_even_with_a_symmetric_key_in_the_jwks(
    provider: JwksServer, verifier: OidcVerifier
) -> None:
    secret = b"0123456789abcdef0123456789abcdef"
    provider.extra.append({"kty": "oct", "k": b64url(secret), "kid": "sym", "alg": "HS256"})
    header = {"alg": "HS256", "typ": "JWT", "kid": "sym"}
    unsigned = hand_made(header, claims("user-1")).rsplit(".", 1)[0]
    mac = hmac.new(secret, unsigned.encode("ascii"), hashlib.sha256).digest()
    assert "not allowed" in await rejected(verifier, unsigned + "." + b64url(mac))


async def test_rs256_header_with_the_kid_of_the_ec_key_is_rejected(
    provider: JwksServer, verifier: OidcVerifier
) -> None:
    token = provider.keys.sign(claims("user-1"), key="rsa", kid=provider.keys["ec"].kid)
    assert "does not match its key" in await rejected(verifier, token)


async def test_es256_header_with_the_kid_of_the_rsa_key_is_rejected(
    provider: JwksServer, verifier: OidcVerifier
) -> None:
    token = provider.keys.sign(claims("user-1"), key="ec", kid=provider.keys["rsa"].kid)
    assert "does not match its key" in await rejected(verifier, token)


async def test_algorithm_outside_the_allowlist_is_rejected(
    provider: JwksServer, make: Make
) -> None:
    verifier = make(algorithms=["RS256"])
    token = provider.keys.sign(claims("user-1"), key="ec")
    assert await rejected(verifier, token) == "id_token alg 'ES256' is not allowed"
    assert provider.fetches == 0  # refused before any key was needed


async def test_malformed_token_is_rejected(verifier: OidcVerifier) -> None:
    for token in ("not a jwt", "a.b", "a.b.c", "!!!.###.$$$", hand_made({"kid": 1}, {})):
        assert await rejected(verifier, token) == "id_token is not a well-formed JWT"
    with pytest.raises(ProofRejected, match="missing"):
        await verifier.verify("")


async def test_oversized_token_is_rejected_before_parsing(
    provider: JwksServer, verifier: OidcVerifier
) -> None:
    token = provider.keys.sign(claims("user-1", padding="x" * 17_000))
    assert "longer than" in await rejected(verifier, token)
    assert provider.fetches == 0


# --- Claims -----------------------------------------------------------------------------------


async def test_wrong_audience_is_rejected(provider: JwksServer, verifier: OidcVerifier) -> None:
    token = provider.keys.sign(claims("user-1", audience="another-app"))
    assert await rejected(verifier, token) == "wrong audience"


async def test_wrong_issuer_is_rejected(provider: JwksServer, verifier: OidcVerifier) -> None:
    token = provider.keys.sign(claims("user-1", issuer="https://evil.example.test"))
    assert await rejected(verifier, token) == "wrong issuer"


async def test_expired_token_beyond_leeway_is_rejected(provider: JwksServer, make: Make) -> None:
    verifier = make(leeway=60.0)
    now = int(time.time())
    token = provider.keys.sign(claims("user-1", iat=now - 3600, exp=now - 120))
    assert await rejected(verifier, token) == "id_token expired"


async def test_expired_token_within_leeway_is_accepted(provider: JwksServer, make: Make) -> None:
    verifier = make(leeway=60.0)
    now = int(time.time())
    token = provider.keys.sign(claims("user-1", iat=now - 3600, exp=now - 30))
    assert (await verifier.verify(token)).subject == "user-1"


async def test_nbf_in_the_future_is_rejected(provider: JwksServer, verifier: OidcVerifier) -> None:
    token = provider.keys.sign(claims("user-1", nbf=int(time.time()) + 600))
    assert "not valid yet" in await rejected(verifier, token)


async def test_iat_in_the_future_is_rejected(provider: JwksServer, verifier: OidcVerifier) -> None:
    token = provider.keys.sign(claims("user-1", iat=int(time.time()) + 600))
    assert "not valid yet" in await rejected(verifier, token)


@pytest.mark.parametrize("claim", ["exp", "iat", "iss", "aud"])
async def test_token_without_a_required_claim_is_rejected(
    provider: JwksServer, verifier: OidcVerifier, claim: str
) -> None:
    left_out: dict[str, Any] = {claim: None}
    token = provider.keys.sign(claims("user-1", **left_out))
    assert await rejected(verifier, token) == f"id_token has no '{claim}' claim"


async def test_token_without_sub_is_rejected(provider: JwksServer, verifier: OidcVerifier) -> None:
    token = provider.keys.sign(claims(None))
    assert await rejected(verifier, token) == "id_token has no 'sub' claim"


@pytest.mark.parametrize("sub", ["", 12345, ["user-1"]])
async def test_empty_or_non_string_sub_is_rejected(
    provider: JwksServer, verifier: OidcVerifier, sub: object
) -> None:
    token = provider.keys.sign({**claims("user-1"), "sub": sub})
    assert "sub" in await rejected(verifier, token)


async def test_exp_as_a_string_is_rejected(provider: JwksServer, verifier: OidcVerifier) -> None:
    token = provider.keys.sign(claims("user-1", exp=str(int(time.time()) + 3600)))
    assert await rejected(verifier, token) == "id_token exp is not a number"


# --- Key ids and rotation ---------------------------------------------------------------------


async def test_unknown_kid_refetches_once_and_a_rotated_key_is_accepted(
    provider: JwksServer, verifier: OidcVerifier
) -> None:
    await verifier.verify(provider.keys.sign(claims("user-1")))
    assert provider.fetches == 1
    rotated = provider.rotate()
    assert (await verifier.verify(provider.keys.sign(claims("user-3"), key=rotated))).subject
    assert provider.fetches == 2
    # Within the refetch interval another unknown kid is refused without a fetch.
    token = provider.keys.sign(claims("user-1"), kid="never-published")
    assert "not in the JWKS" in await rejected(verifier, token)
    assert provider.fetches == 2


async def test_unknown_kid_is_rejected_after_exactly_one_refetch(
    provider: JwksServer, verifier: OidcVerifier
) -> None:
    await verifier.verify(provider.keys.sign(claims("user-1")))
    token = provider.keys.sign(claims("user-1"), kid="never-published")
    assert await rejected(verifier, token) == "id_token kid 'never-published' is not in the JWKS"
    assert provider.fetches == 2


async def test_flood_of_unknown_kids_refetches_at_most_once_per_interval(
    provider: JwksServer, make: Make
) -> None:
    verifier = make(refetch_interval=0.5)
    await verifier.verify(provider.keys.sign(claims("user-1")))
    for n in range(30):
        await rejected(verifier, provider.keys.sign(claims("user-1"), kid=f"random-{n}"))
    assert provider.fetches == 2
    await asyncio.gather(
        *(
            rejected(verifier, provider.keys.sign(claims("user-1"), kid=f"again-{n}"))
            for n in range(30)
        )
    )
    assert provider.fetches == 2
    await asyncio.sleep(0.6)
    for n in range(30):
        await rejected(verifier, provider.keys.sign(claims("user-1"), kid=f"later-{n}"))
    assert provider.fetches == 3


async def test_flood_of_unknown_kids_on_a_cold_cache_fetches_at_most_twice(
    provider: JwksServer, verifier: OidcVerifier
) -> None:
    for n in range(30):
        await rejected(verifier, provider.keys.sign(claims("user-1"), kid=f"random-{n}"))
    assert provider.fetches == 2  # the first fill, and one refetch


async def test_token_without_kid_is_accepted_when_the_jwks_has_one_key(
    provider: JwksServer, make: Make
) -> None:
    del provider.keys.keys["ec"]
    verifier = make()
    assert (await verifier.verify(provider.keys.sign(claims("user-1"), kid=None))).subject


async def test_token_without_kid_is_rejected_when_the_jwks_has_several_keys(
    provider: JwksServer, verifier: OidcVerifier
) -> None:
    token = provider.keys.sign(claims("user-1"), kid=None)
    assert "no kid" in await rejected(verifier, token)


async def test_unusable_jwks_entries_are_skipped(provider: JwksServer, make: Make) -> None:
    rsa_jwk = provider.keys["rsa"].public_jwk()
    provider.extra.extend(
        [
            {**rsa_jwk, "kid": "for-encryption", "use": "enc"},
            {**rsa_jwk, "kid": "ps-only", "alg": "PS512"},
            {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
            {"kty": "XYZ", "kid": "unknown-type"},
            "not an object",
            {**provider.keys["ec"].public_jwk(), "kid": "wrong-curve", "alg": "ES384"},
        ]
    )
    verifier = make(algorithms=["RS256", "ES256", "ES384"])
    assert (await verifier.verify(provider.keys.sign(claims("user-1")))).subject == "user-1"
    for kid in ("for-encryption", "ps-only", "broken", "unknown-type"):
        await rejected(verifier, provider.keys.sign(claims("user-1"), kid=kid))
    # Declared ES384 but on P-256: not usable for ES384, and not offered for ES256 either.
    await rejected(verifier, provider.keys.sign(claims("user-1"), key="ec", kid="wrong-curve"))


async def test_jwks_key_without_alg_verifies_the_algorithms_its_type_allows(
    provider: JwksServer, make: Make
) -> None:
    rsa_jwk = provider.keys["rsa"].public_jwk()
    del rsa_jwk["alg"], rsa_jwk["use"]
    provider.extra.append({**rsa_jwk, "kid": "no-alg"})
    verifier = make(algorithms=["RS256", "PS256"])
    for alg in ("RS256", "PS256"):
        token = provider.keys.sign(claims("user-1"), kid="no-alg", alg=alg)
        assert (await verifier.verify(token)).subject == "user-1"
    token = provider.keys.sign(claims("user-1"), kid="no-alg", alg="RS512")
    await rejected(verifier, token)


# --- Fetching the JWKS ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["garbage", "malformed", "500"])
async def test_broken_jwks_answer_is_rejected_quickly(
    provider: JwksServer, make: Make, mode: Any
) -> None:
    provider.mode = mode
    verifier = make(timeout=1.0)
    started = time.monotonic()
    reason = await rejected(verifier, provider.keys.sign(claims("user-1")))
    assert time.monotonic() - started < 1.0 + 1.0
    assert reason.startswith("the JWKS is unavailable")


async def test_slow_jwks_times_out_quickly(provider: JwksServer, make: Make) -> None:
    provider.mode = "slow"
    verifier = make(timeout=0.5)
    started = time.monotonic()
    reason = await rejected(verifier, provider.keys.sign(claims("user-1")))
    assert time.monotonic() - started < 0.5 + 1.0
    assert "within 0.5s" in reason


async def test_unreachable_jwks_is_rejected(provider: JwksServer, make: Make) -> None:
    verifier = make(jwks_url=provider.url)
    token = provider.keys.sign(claims("user-1"))
    await provider.close()
    assert "cannot fetch the JWKS" in await rejected(verifier, token)


async def test_failed_fetch_is_not_retried_within_the_interval(
    provider: JwksServer, make: Make
) -> None:
    provider.mode = "500"
    verifier = make(refetch_interval=0.5)
    token = provider.keys.sign(claims("user-1"))
    for _ in range(10):
        assert "HTTP 500" in await rejected(verifier, token)
    assert provider.fetches == 1
    provider.mode = "ok"
    await asyncio.sleep(0.6)
    assert (await verifier.verify(token)).subject == "user-1"
    assert provider.fetches == 2


async def test_concurrent_verifications_on_a_cold_cache_share_one_fetch(
    provider: JwksServer, verifier: OidcVerifier
) -> None:
    tokens = [provider.keys.sign(claims(f"user-{n}")) for n in range(20)]
    identities = await asyncio.gather(*(verifier.verify(token) for token in tokens))
    assert [identity.subject for identity in identities] == [f"user-{n}" for n in range(20)]
    assert provider.fetches == 1


async def test_concurrent_verifications_during_a_slow_fetch_fail_together(
    provider: JwksServer, make: Make
) -> None:
    provider.mode = "slow"
    verifier = make(timeout=0.5)
    token = provider.keys.sign(claims("user-1"))
    started = time.monotonic()
    outcomes = await asyncio.gather(
        *(verifier.verify(token) for _ in range(20)), return_exceptions=True
    )
    assert time.monotonic() - started < 0.5 + 1.0
    assert all(isinstance(outcome, ProofRejected) for outcome in outcomes)
    assert provider.fetches == 1


async def test_jwks_file_is_used_instead_of_a_url(provider: JwksServer, tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(provider.keys.jwks()))
    verifier = OidcVerifier(issuer=ISSUER, audiences=[AUDIENCE], jwks_file=str(path))
    try:
        assert (await verifier.verify(provider.keys.sign(claims("user-1")))).subject == "user-1"
        assert (await verifier.verify(provider.keys.sign(claims("u2"), key="ec"))).subject
    finally:
        await verifier.close()
    assert provider.fetches == 0


async def test_missing_or_garbage_jwks_file_is_rejected(
    provider: JwksServer, tmp_path: Path
) -> None:
    token = provider.keys.sign(claims("user-1"))
    missing = OidcVerifier(
        issuer=ISSUER, audiences=[AUDIENCE], jwks_file=str(tmp_path / "missing.json")
    )
    assert "cannot read jwks_file" in await rejected(missing, token)
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{{{")
    broken = OidcVerifier(issuer=ISSUER, audiences=[AUDIENCE], jwks_file=str(garbage))
    assert "not JSON" in await rejected(broken, token)


async def test_close_without_any_fetch_and_twice_is_fine(verifier: OidcVerifier) -> None:
    await verifier.close()
    await verifier.close()


async def test_verifier_fetches_again_after_close(
    provider: JwksServer, verifier: OidcVerifier
) -> None:
    await verifier.verify(provider.keys.sign(claims("user-1")))
    await verifier.close()
    assert (await verifier.verify(provider.keys.sign(claims("user-1")))).subject == "user-1"


# --- Logs -------------------------------------------------------------------------------------


async def test_tokens_never_appear_in_the_log(
    provider: JwksServer, make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    verifier = make(refetch_interval=0.0)
    now = int(time.time())
    tokens = [
        provider.keys.sign(claims("user-1")),
        provider.keys.sign(claims("user-1", audience="other")),
        provider.keys.sign(claims("user-1", exp=now - 3600)),
        provider.keys.sign(claims("user-1"), kid="unknown"),
        provider.keys.sign(claims("user-1"), key=make_key("rsa", kid=provider.keys["rsa"].kid)),
        hand_made({"alg": "none"}, claims("user-1")),
        "x" * 20_000,
    ]
    for token in tokens:
        assert token not in await outcome(verifier, token)
    provider.mode = "garbage"
    provider.rotate()
    await rejected(verifier, provider.keys.sign(claims("user-1"), key="rsa-2"))
    for token in tokens:
        assert token not in caplog.text
        signature = token.split(".")[-1]
        assert not signature or signature not in caplog.text
    assert "OIDC keys of https://accounts.example.test fetched: 2 usable of 2" in caplog.text
    assert "not fetched: the JWKS is not JSON" in caplog.text


# --- Settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"jwks_url": None}, "exactly one of jwks_url and jwks_file"),
        ({"jwks_file": "jwks.json"}, "exactly one of jwks_url and jwks_file"),
        ({"issuer": ""}, "issuer"),
        ({"audiences": []}, "audiences"),
        ({"audiences": [""]}, "audiences"),
        ({"audiences": "client-1"}, "audiences"),
        ({"algorithms": []}, "algorithms"),
        ({"algorithms": ["RS256", "HS256"]}, "'HS256' is not allowed"),
        ({"algorithms": ["HS512"]}, "'HS512' is not allowed"),
        ({"algorithms": ["none"]}, "'none' is not allowed"),
        ({"algorithms": ["RS257"]}, "unknown algorithm 'RS257'"),
        ({"jwks_url": "http://keys.example.test/jwks.json"}, "https://"),
        ({"jwks_url": "ftp://keys.example.test/jwks.json"}, "https://"),
        ({"jwks_url": "https://keys.example.test:99999/"}, "not a valid URL"),
        ({"timeout": 0}, "timeout"),
        ({"leeway": -1}, "leeway"),
    ],
)
def test_constructor_refuses_bad_settings(overrides: dict[str, Any], message: str) -> None:
    settings: dict[str, Any] = {
        "issuer": ISSUER,
        "audiences": [AUDIENCE],
        "jwks_url": "https://keys.example.test/jwks.json",
    }
    settings.update(overrides)
    with pytest.raises(ValueError, match=message):
        OidcVerifier(**settings)


def test_constructor_accepts_https_and_loopback_http() -> None:
    for url in ("https://www.googleapis.com/oauth2/v3/certs", "http://127.0.0.1:8080/jwks"):
        OidcVerifier(issuer=ISSUER, audiences=[AUDIENCE], jwks_url=url)
