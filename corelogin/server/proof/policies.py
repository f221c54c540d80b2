"""The proof policies of ``[providers.NAME]``: how each kind of provider login is proven.

A `Prover` turns what a login (or a link) carries into the identity it proves, or raises
`ProofRejected`. Only ``token`` cannot prove anything alone: it compares the access token with
the one linked (`TokenProver.check`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Mapping

from corelogin.server.config import ProviderConfig
from corelogin.server.proof.base import Identity, ProofRejected
from corelogin.server.proof.introspect import Introspector
from corelogin.server.proof.oidc import OidcVerifier
from corelogin.server.store import ProviderLink
from corelogin.wire import ApiError, Status

__all__ = ["DEVICE_SECRET_MIN_CHARS", "Prover", "TokenProver", "make_provers"]

log = logging.getLogger("corelogin.server")

# A device secret is its own proof: it must be too long to guess.
DEVICE_SECRET_MIN_CHARS = 16
# Compared with when no link exists, so that a missing link costs the same comparison.
_NO_TOKEN = "corelogin: no access token is linked"  # noqa: S105 (not a secret)


class Prover:
    """``trust_client_id``: Coronium's behaviour, the client_id is taken at its word."""

    def __init__(self, name: str, config: ProviderConfig) -> None:
        self.name = name
        self.config = config

    @property
    def signup(self) -> bool:
        return self.config.signup

    def identity_key(self, client_id: str) -> str:
        """How an identity is kept in a link."""
        return client_id

    async def prove(
        self, client_id: str, access_token: str | None, id_token: str | None
    ) -> Identity:
        return Identity(self.identity_key(client_id))

    async def close(self) -> None:
        """Let go of connections to the provider."""


class OidcProver(Prover):
    """``oidc``: the id_token, verified against the provider's keys, names the identity."""

    def __init__(self, name: str, config: ProviderConfig) -> None:
        super().__init__(name, config)
        assert config.issuer is not None
        self._verifier = OidcVerifier(
            issuer=config.issuer,
            audiences=config.audiences,
            jwks_url=config.jwks_url,
            jwks_file=config.jwks_file,
            leeway=config.leeway_seconds,
            timeout=config.timeout_seconds,
        )

    async def prove(
        self, client_id: str, access_token: str | None, id_token: str | None
    ) -> Identity:
        if id_token is None:
            raise ProofRejected("no id_token")
        identity = await self._verifier.verify(id_token)
        if identity.subject != client_id:
            raise ProofRejected("the id_token's sub is not the client_id")
        return identity

    async def close(self) -> None:
        await self._verifier.close()


class IntrospectProver(Prover):
    """``introspect``: the provider says whose the access token is."""

    def __init__(self, name: str, config: ProviderConfig) -> None:
        super().__init__(name, config)
        assert config.introspect_url is not None
        self._introspector = Introspector(
            url=config.introspect_url,
            format=config.introspect_format,
            client_id=config.client_id,
            client_secret=config.client_secret,
            timeout=config.timeout_seconds,
        )

    async def prove(
        self, client_id: str, access_token: str | None, id_token: str | None
    ) -> Identity:
        if access_token is None:
            raise ProofRejected("no access_token")
        identity = await self._introspector.verify(access_token)
        if identity.subject != client_id:
            raise ProofRejected("the access token belongs to another identity")
        return identity

    async def close(self) -> None:
        await self._introspector.close()


class DeviceProver(Prover):
    """``device`` (OPENUDID): the client_id is a device's secret, and its own proof. Links keep
    an identifier derived from it, never the secret."""

    def identity_key(self, client_id: str) -> str:
        if len(client_id) < DEVICE_SECRET_MIN_CHARS:
            raise ApiError(
                Status.WRONG_TYPE,
                f"a device's client_id is its secret: at least {DEVICE_SECRET_MIN_CHARS} "
                "characters",
            )
        digest = hashlib.sha256(f"corelogin device\0{self.name}\0{client_id}".encode())
        return "device-" + digest.hexdigest()[:40]


class TokenProver(Prover):
    """``token``: the access token must be the one linked, and not expired."""

    async def prove(
        self, client_id: str, access_token: str | None, id_token: str | None
    ) -> Identity:
        raise ProofRejected("the token policy proves only against a link")

    def check(self, link: ProviderLink | None, access_token: str | None) -> None:
        """Constant time, and the same work whether or not there is a link."""
        expected = (link.access_token if link else None) or _NO_TOKEN
        given = access_token or ""
        same = hmac.compare_digest(given.encode(), expected.encode())
        if link is None or link.access_token is None or not same:
            raise ProofRejected("the access token is not the one linked")
        expiry = link.access_token_expiry
        if expiry is not None and expiry <= time.time():
            raise ProofRejected("the linked access token has expired")


_POLICIES: Mapping[str, type[Prover]] = {
    "oidc": OidcProver,
    "token": TokenProver,
    "introspect": IntrospectProver,
    "device": DeviceProver,
    "trust_client_id": Prover,
}


def make_provers(providers: Mapping[str, ProviderConfig]) -> dict[str, Prover]:
    """A prover for every configured provider."""
    provers = {}
    for name, config in providers.items():
        provers[name] = _POLICIES[config.policy](name, config)
        if config.policy == "trust_client_id":
            log.warning(
                "INSECURE: provider %s trusts a bare client_id (policy trust_client_id): anybody "
                "who learns a user's id at %s can log in as them",
                name,
                name,
            )
    return provers
