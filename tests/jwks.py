"""A real JWKS server for the tests (aiohttp on 127.0.0.1, on a port the OS picks), and the
test keys it publishes.

``async with JwksServer() as provider: ...`` or the `jwks_server` fixture; tokens come from
``provider.keys.sign(claims("user-1"))``. The server can misbehave on request (`mode`) and
rotate its keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

import attrs
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

__all__ = [
    "AUDIENCE",
    "ISSUER",
    "KEY_KID",
    "JwksServer",
    "Keys",
    "Mode",
    "TestKey",
    "claims",
    "jwks_server",
    "make_key",
]

ISSUER = "https://accounts.example.test"
AUDIENCE = "client-1.apps.example.test"

KeyKind = Literal["rsa", "ec"]
Mode = Literal["ok", "garbage", "malformed", "slow", "500"]


class _Kid(enum.Enum):
    KEY = "key"


# `Keys.sign`'s default kid: the signing key's own.
KEY_KID: Literal[_Kid.KEY] = _Kid.KEY


@attrs.frozen
class TestKey:
    """A private key with its kid and algorithm (RS256 for RSA, ES256 for EC P-256)."""

    __test__ = False  # not a test class, whatever pytest thinks of its name

    name: str
    kid: str
    alg: str
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = attrs.field(repr=False)

    def public_jwk(self) -> dict[str, Any]:
        """The public key as a JWK, with kid, ``use: sig`` and alg."""
        public = self.private.public_key()
        jwk = (
            RSAAlgorithm.to_jwk(public, as_dict=True)
            if isinstance(public, rsa.RSAPublicKey)
            else ECAlgorithm.to_jwk(public, as_dict=True)
        )
        return {**jwk, "kid": self.kid, "use": "sig", "alg": self.alg}

    def public_pem(self) -> bytes:
        """The public key as PEM (what a confused verifier might take for an HMAC secret)."""
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def make_key(kind: KeyKind = "rsa", *, name: str | None = None, kid: str | None = None) -> TestKey:
    """A new key, published nowhere (unless added to a `Keys`)."""
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if kind == "rsa":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        alg = "RS256"
    else:
        private = ec.generate_private_key(ec.SECP256R1())
        alg = "ES256"
    return TestKey(
        name=name or kind,
        kid=kid or f"{kind}-{secrets.token_hex(4)}",
        alg=alg,
        private=private,
    )


class Keys:
    """The provider's keys: ``"rsa"`` (RS256) and ``"ec"`` (ES256) from the start, and those
    `rotate` adds (``"rsa-2"``, ...). All are published in `jwks`."""

    def __init__(self) -> None:
        self.keys: dict[str, TestKey] = {"rsa": make_key("rsa"), "ec": make_key("ec")}
        self._serial = itertools.count(2)

    def __getitem__(self, name: str) -> TestKey:
        return self.keys[name]

    def jwks(self) -> dict[str, Any]:
        """The public JWK set, as the provider serves it."""
        return {"keys": [key.public_jwk() for key in self.keys.values()]}

    def rotate(self, kind: KeyKind = "rsa") -> str:
        """Adds a new key with a new kid; its name (for `sign`)."""
        name = f"{kind}-{next(self._serial)}"
        self.keys[name] = make_key(kind, name=name)
        return name

    def sign(
        self,
        claims: dict[str, Any],
        *,
        key: str | TestKey = "rsa",
        kid: str | Literal[_Kid.KEY] | None = KEY_KID,
        alg: str | None = None,
        headers: dict[str, Any] | None = None,
    ) -> str:
        """A JWT of ``claims`` signed by ``key`` (a name here, or any `TestKey`). ``kid``:
        the key's own by default, another to lie, None for none; ``alg``: the key's by
        default; ``headers`` are added to the header as they are."""
        signer = key if isinstance(key, TestKey) else self.keys[key]
        header: dict[str, Any] = {}
        if kid is KEY_KID:
            header["kid"] = signer.kid
        elif kid is not None:
            header["kid"] = kid
        header.update(headers or {})
        return jwt.encode(claims, signer.private, algorithm=alg or signer.alg, headers=header)


def claims(
    sub: str | None,
    *,
    issuer: str = ISSUER,
    audience: str | list[str] = AUDIENCE,
    **overrides: Any,
) -> dict[str, Any]:
    """Valid id_token claims for ``sub``: issued now, expiring in an hour, with an email.
    ``overrides`` replace claims or add some; an override (or ``sub``) of None leaves that
    claim out."""
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": sub,
        "iat": now,
        "exp": now + 3600,
        "email": f"{sub}@example.org",
        "email_verified": True,
    }
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not None}


class JwksServer:
    """Serves ``GET /jwks.json`` with `keys`' JWK set (and any `extra` JWKs after them) on
    127.0.0.1; counts the requests in `fetches`.

    `mode`: ``"ok"``; ``"garbage"`` (200 with a body that is not JSON); ``"malformed"`` (200
    with JSON that is not a JWKS); ``"slow"`` (answers after `slow_seconds`, or when the
    server closes); ``"500"``.
    """

    def __init__(self, keys: Keys | None = None) -> None:
        self.keys = keys or Keys()
        self.extra: list[Any] = []  # JWKS entries, or anything a broken JWKS might hold
        self.mode: Mode = "ok"
        self.slow_seconds = 60.0
        self.fetches = 0
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("the JWKS server is not started")
        return f"http://127.0.0.1:{self._port}/jwks.json"

    def rotate(self, kind: KeyKind = "rsa") -> str:
        """Publishes a new key with a new kid (the old ones stay); its name."""
        return self.keys.rotate(kind)

    async def _jwks(self, request: web.Request) -> web.StreamResponse:
        self.fetches += 1
        if self.mode == "slow":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.slow_seconds)
        elif self.mode == "garbage":
            return web.Response(body=b"<html>not json{", content_type="text/html")
        elif self.mode == "malformed":
            return web.json_response({"keys": "none today"})
        elif self.mode == "500":
            return web.Response(status=500, text="internal error")
        document = self.keys.jwks()
        document["keys"].extend(self.extra)
        return web.Response(text=json.dumps(document), content_type="application/json")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/jwks.json", self._jwks)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> JwksServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


@pytest.fixture
async def jwks_server() -> AsyncIterator[JwksServer]:
    """A started `JwksServer` with fresh `Keys`; its `url` is the ``jwks_url``."""
    async with JwksServer() as server:
        yield server
