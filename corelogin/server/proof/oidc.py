"""The ``oidc`` proof: an OpenID Connect id_token (Google, Apple sign-in), checked against the
provider's published keys (its JWKS) and the claims the server expects.

All the JWT work is PyJWT's; this module chooses the key, and refuses what PyJWT would let
through by default: an algorithm the provider does not use (``none``, HMAC with a public key
as the secret), a missing ``exp``, ``iat`` or ``sub``. Every refusal is a `ProofRejected`
whose message is for the server's log; nothing here logs or repeats a token.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, Final

import aiohttp
import attrs
import jwt

from corelogin.server.proof.base import Identity, ProofRejected

__all__ = ["OidcVerifier"]

log = logging.getLogger("corelogin.server")

# Asymmetric algorithms only: with an HMAC algorithm the "public" key would be the secret.
_SIGNATURE_ALGORITHMS: Final = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
# An id_token is a few KiB at most; a bigger one is refused before any parsing.
_MAX_TOKEN_CHARS: Final = 16 * 1024
# A provider's JWKS is a few KiB; more is not a JWKS.
_MAX_JWKS_BYTES: Final = 1024 * 1024
_REQUIRED_CLAIMS: Final = ("iss", "aud", "exp", "iat", "sub")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _shown(value: Any, limit: int = 40) -> str:
    """A header value fit for the log: quoted, one line, short."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@attrs.frozen
class _KeySet:
    """The usable keys of a JWKS: by kid, each with one PyJWK per algorithm it may verify
    (a key without ``alg`` gets one for each allowed algorithm that fits it)."""

    by_kid: Mapping[str, tuple[jwt.PyJWK, ...]]
    # The keys of the only usable JWK, if there is exactly one: for a token without kid.
    sole: tuple[jwt.PyJWK, ...] | None
    usable: int


class _FetchFailed(Exception):
    """The JWKS could not be had; the text is one line for the log."""


class OidcVerifier:
    """Checks id_tokens of one provider: signed by a key of its JWKS (``jwks_url``, or a
    ``jwks_file`` for tests and offline setups), issued by ``issuer`` for one of
    ``audiences`` (the server's client ids), and not expired (give or take ``leeway`` s).

    The JWKS is kept ``cache_seconds``. A token whose kid is not in it makes one early
    refetch (the provider rotated its keys), but at most one every ``refetch_interval`` s, so
    that a flood of made-up kids cannot make the server hammer the provider; a failed fetch
    is not retried within that interval either. Concurrent verifications share one fetch.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audiences: Sequence[str],
        jwks_url: str | None = None,
        jwks_file: str | None = None,
        leeway: float = 60.0,
        timeout: float = 5.0,
        algorithms: Sequence[str] = ("RS256", "ES256"),
        cache_seconds: float = 3600.0,
        refetch_interval: float = 10.0,
    ) -> None:
        if not issuer:
            raise ValueError("issuer must not be empty")
        if isinstance(audiences, str):
            raise ValueError("audiences must be a list of client ids, not one string")
        if not audiences or not all(isinstance(a, str) and a for a in audiences):
            raise ValueError("audiences must be one or more non-empty client ids")
        if (jwks_url is None) == (jwks_file is None):
            raise ValueError("give exactly one of jwks_url and jwks_file")
        if jwks_url is not None:
            self._check_url(jwks_url)
        if jwks_file == "":
            raise ValueError("jwks_file must not be empty")
        if isinstance(algorithms, str):
            raise ValueError("algorithms must be a list of algorithm names, not one string")
        if not algorithms:
            raise ValueError("algorithms must name at least one algorithm")
        for name in algorithms:
            if not isinstance(name, str):
                raise ValueError("algorithms must be algorithm names")
            if name.lower() == "none" or name.upper().startswith("HS"):
                raise ValueError(f"algorithm {name!r} is not allowed for id_tokens")
            if name not in _SIGNATURE_ALGORITHMS:
                known = ", ".join(sorted(_SIGNATURE_ALGORITHMS))
                raise ValueError(f"unknown algorithm {name!r} (known: {known})")
        if leeway < 0:
            raise ValueError("leeway must not be negative")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if cache_seconds < 0 or refetch_interval < 0:
            raise ValueError("cache_seconds and refetch_interval must not be negative")

        self.issuer = issuer
        self.audiences: tuple[str, ...] = tuple(audiences)
        self.algorithms: tuple[str, ...] = tuple(dict.fromkeys(algorithms))
        self.jwks_url = jwks_url
        self.jwks_file = jwks_file
        self.leeway = leeway
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self.refetch_interval = refetch_interval

        self._keys: _KeySet | None = None
        self._fetched_at = 0.0  # monotonic time of the last good fetch
        self._refetched_at: float | None = None  # ... of the last refetch for an unknown kid
        self._failed_at: float | None = None  # ... of the last failed fetch
        self._failure = ""
        self._inflight: asyncio.Task[_KeySet | _FetchFailed] | None = None
        self._session: aiohttp.ClientSession | None = None

    @staticmethod
    def _check_url(url: str) -> None:
        try:
            parts = urllib.parse.urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            raise ValueError("jwks_url is not a valid URL") from None
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("jwks_url must be an https:// URL")
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            # Keys fetched in clear text could be replaced on the way: any token would pass.
            raise ValueError("jwks_url must be https:// (http:// only for a loopback host)")

    # --- Verification ----------------------------------------------------------------------

    async def verify(self, id_token: str) -> Identity:
        """The identity ``id_token`` proves; raises `ProofRejected` with the reason."""
        if not isinstance(id_token, str) or not id_token:
            raise ProofRejected("id_token is missing")
        if len(id_token) > _MAX_TOKEN_CHARS:
            raise ProofRejected(f"id_token is longer than {_MAX_TOKEN_CHARS} characters")
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError:
            raise ProofRejected("id_token is not a well-formed JWT") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise ProofRejected(f"id_token alg {_shown(alg)} is not allowed")
        kid = header.get("kid")  # PyJWT has checked that a kid is a string
        key = await self._key_for(kid, alg)
        claims = self._decode(id_token, key, alg)
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise ProofRejected("id_token sub is empty or not a string")
        return Identity(subject=sub, claims=claims)

    async def _key_for(self, kid: str | None, alg: str) -> jwt.PyJWK:
        keys, fresh_from_provider = await self._current_keys()
        if kid is None:
            if keys.sole is None:
                raise ProofRejected(
                    f"id_token has no kid and the JWKS has {keys.usable} usable keys, not 1"
                )
            return self._with_alg(keys.sole, alg)
        candidates = keys.by_kid.get(kid)
        if candidates is None and not fresh_from_provider:
            keys = await self._refetch_for_unknown_kid(keys)
            candidates = keys.by_kid.get(kid)
        if candidates is None:
            raise ProofRejected(f"id_token kid {_shown(kid)} is not in the JWKS")
        return self._with_alg(candidates, alg)

    @staticmethod
    def _with_alg(candidates: tuple[jwt.PyJWK, ...], alg: str) -> jwt.PyJWK:
        for key in candidates:
            if key.algorithm_name == alg:
                return key
        raise ProofRejected(f"id_token alg {_shown(alg)} does not match its key's type")

    def _decode(self, id_token: str, key: jwt.PyJWK, alg: str) -> dict[str, Any]:
        try:
            claims = jwt.decode(
                id_token,
                key,
                algorithms=[alg],
                audience=list(self.audiences),
                issuer=self.issuer,
                leeway=self.leeway,
                options={
                    "require": list(_REQUIRED_CLAIMS),
                    "verify_signature": True,
                    "verify_exp": True,
                    "verify_iat": True,
                    "verify_nbf": True,
                    "verify_iss": True,
                    "verify_aud": True,
                    "verify_sub": False,  # checked below, with a reason of our own
                    "strict_aud": False,
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.PyJWTError as exc:
            raise ProofRejected(_reason(exc)) from None
        for name in ("exp", "iat", "nbf"):  # PyJWT would take "1700000000" too
            value = claims.get(name)
            if name in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise ProofRejected(f"id_token {name} is not a number")
        return claims

    # --- The keys ----------------------------------------------------------------------------

    async def _current_keys(self) -> tuple[_KeySet, bool]:
        """The keys, and whether they were fetched for this call (no refetch then)."""
        if self._keys is not None and time.monotonic() - self._fetched_at < self.cache_seconds:
            return self._keys, False
        return await self._fetch(), True

    async def _refetch_for_unknown_kid(self, keys: _KeySet) -> _KeySet:
        """The JWKS again, if the last such refetch is older than ``refetch_interval``; else
        ``keys`` as they are."""
        if self._inflight is not None:  # a fetch is under way anyway
            return await self._fetch()
        now = time.monotonic()
        if self._refetched_at is not None and now - self._refetched_at < self.refetch_interval:
            return keys
        self._refetched_at = now
        return await self._fetch()

    async def _fetch(self) -> _KeySet:
        """The JWKS fetched now, or by the fetch under way (all callers share it)."""
        if self._inflight is None:
            now = time.monotonic()
            if self._failed_at is not None and now - self._failed_at < self.refetch_interval:
                raise ProofRejected(f"the JWKS is unavailable ({self._failure}); retry later")
            self._inflight = asyncio.get_running_loop().create_task(self._run_fetch())
        # Shielded: a caller that goes away (cancelled) does not cancel the others' fetch.
        result = await asyncio.shield(self._inflight)
        if isinstance(result, _FetchFailed):
            raise ProofRejected(f"the JWKS is unavailable ({result})")
        return result

    async def _run_fetch(self) -> _KeySet | _FetchFailed:
        """One fetch; its outcome is kept. It never raises: a task nobody awaits any more
        would leave its exception unretrieved."""
        try:
            try:
                async with asyncio.timeout(self.timeout):
                    document = await self._read_jwks()
                keys, total = self._key_set(document)
            except _FetchFailed as exc:
                failure = exc
            except TimeoutError:
                failure = _FetchFailed(f"no JWKS within {self.timeout}s")
            except Exception as exc:  # whatever was not foreseen: still no keys
                failure = _FetchFailed(f"{type(exc).__name__} while fetching the JWKS")
            else:
                self._keys = keys
                self._fetched_at = time.monotonic()
                self._failed_at = None
                log.info(
                    "OIDC keys of %s fetched: %d usable of %d", self.issuer, keys.usable, total
                )
                return keys
            self._failed_at = time.monotonic()
            self._failure = str(failure)
            log.warning("OIDC keys of %s not fetched: %s", self.issuer, failure)
            return failure
        finally:
            if self._inflight is asyncio.current_task():
                self._inflight = None

    async def _read_jwks(self) -> Any:
        if self.jwks_file is not None:
            try:
                data = await asyncio.to_thread(self._read_file, self.jwks_file)
            except OSError as exc:
                reason = exc.strerror or type(exc).__name__
                raise _FetchFailed(f"cannot read jwks_file: {reason}") from None
        else:
            data = await self._download()
        try:
            return json.loads(data)
        except (ValueError, RecursionError):
            raise _FetchFailed("the JWKS is not JSON") from None

    @staticmethod
    def _read_file(path: str) -> bytes:
        with open(path, "rb") as file:
            data = file.read(_MAX_JWKS_BYTES + 1)
        if len(data) > _MAX_JWKS_BYTES:
            raise _FetchFailed(f"jwks_file is larger than {_MAX_JWKS_BYTES} bytes")
        return data

    async def _download(self) -> bytes:
        assert self.jwks_url is not None
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"Accept": "application/json"},
            )
        try:
            # No redirects: one could lead to http://, where the keys could be replaced.
            async with self._session.get(self.jwks_url, allow_redirects=False) as response:
                if response.status != 200:
                    raise _FetchFailed(f"the JWKS URL answered HTTP {response.status}")
                data = await response.content.read(_MAX_JWKS_BYTES + 1)
        except aiohttp.ClientError as exc:
            raise _FetchFailed(f"cannot fetch the JWKS: {type(exc).__name__}") from None
        if len(data) > _MAX_JWKS_BYTES:
            raise _FetchFailed(f"the JWKS is larger than {_MAX_JWKS_BYTES} bytes")
        return data

    def _key_set(self, document: Any) -> tuple[_KeySet, int]:
        """The usable keys of a JWKS document, and how many keys it has in all. Keys that
        PyJWT cannot load, that are not for signatures, private, too short, or of an
        algorithm not allowed are left out."""
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise _FetchFailed("the JWKS is not a JSON object with a list of keys")
        entries: list[Any] = document["keys"]
        by_kid: dict[str, tuple[jwt.PyJWK, ...]] = {}
        usable: list[tuple[jwt.PyJWK, ...]] = []
        for jwk in entries:
            loaded = self._load_jwk(jwk)
            if not loaded:
                continue
            usable.append(loaded)
            kid = jwk.get("kid")
            if isinstance(kid, str):
                by_kid[kid] = by_kid.get(kid, ()) + loaded
        if not usable:
            raise _FetchFailed(f"the JWKS has no usable key (of {len(entries)})")
        sole = usable[0] if len(usable) == 1 else None
        return _KeySet(by_kid=by_kid, sole=sole, usable=len(usable)), len(entries)

    def _load_jwk(self, jwk: Any) -> tuple[jwt.PyJWK, ...]:
        if not isinstance(jwk, dict):
            return ()
        if (
            jwk.get("use", "sig") != "sig"
            or "d" in jwk
            or ("kid" in jwk and not isinstance(jwk["kid"], str))
        ):
            return ()
        alg = jwk.get("alg")
        if alg is not None and alg not in self.algorithms:
            return ()
        loaded: list[jwt.PyJWK] = []
        for name in (alg,) if alg is not None else self.algorithms:
            try:
                key = jwt.PyJWK(jwk, algorithm=name)
                # Also checks that the key fits the algorithm (an EC key's curve).
                prepared = key.Algorithm.prepare_key(key.key)
                if key.Algorithm.check_key_length(prepared) is not None:
                    continue
            except (jwt.PyJWTError, ValueError, TypeError):
                continue
            loaded.append(key)
        return tuple(loaded)

    async def close(self) -> None:
        """Stops a fetch under way and closes the HTTP session (if there is one)."""
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            inflight.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await inflight
        session, self._session = self._session, None
        if session is not None:
            await session.close()


# What went wrong, in words of our own (PyJWT's may quote a header); the first class that
# matches wins, so subclasses come before the classes they derive from.
_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "id_token expired"),
    (jwt.ImmatureSignatureError, "id_token is not valid yet (nbf or iat in the future)"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.InvalidSignatureError, "id_token signature does not verify"),
    (jwt.InvalidAlgorithmError, "id_token alg does not match its key"),
    (jwt.InvalidIssuedAtError, "id_token iat is not a number"),
    (jwt.InvalidKeyError, "the JWKS key cannot verify this id_token"),
    (jwt.DecodeError, "id_token is malformed"),
)


def _reason(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"id_token has no {_shown(exc.claim)} claim"
    for kind, reason in _REASONS:
        if isinstance(exc, kind):
            return reason
    return f"id_token is invalid ({type(exc).__name__})"
