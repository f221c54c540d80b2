"""The ``introspect`` proof policy: the provider itself says whether an access token is valid
and whose it is, either by RFC 7662 token introspection or by Facebook's ``debug_token``.

Nothing here logs or repeats the access token or the client secret. aiohttp's errors are named
by their class only: their text may hold the request's URL, and Facebook's has both in its query.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any, Final, Literal, NoReturn

import aiohttp

from corelogin.server.proof.base import Identity, ProofRejected

__all__ = ["MAX_ANSWER_BYTES", "Introspector"]

log = logging.getLogger("corelogin.server")

# An introspection answer is a few hundred bytes; anything this big is not one.
MAX_ANSWER_BYTES: Final = 64 * 1024
_CHUNK: Final = 8192


def _reject_constant(name: str) -> NoReturn:
    """NaN and Infinity are not JSON; a NaN ``exp`` would compare as "not expired"."""
    raise ValueError(f"{name} is not JSON")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _basic_auth(client_id: str, client_secret: str) -> str:
    """The Authorization header of RFC 6749 §2.3.1 (which RFC 7662 §2.1 uses): the id and the
    secret are form-encoded first, so a ``:`` in either cannot split them wrongly."""
    pair = f"{urllib.parse.quote_plus(client_id)}:{urllib.parse.quote_plus(client_secret)}"
    return "Basic " + base64.b64encode(pair.encode("ascii")).decode("ascii")


class Introspector:
    """Asks the provider at ``url`` about access tokens (`verify`).

    ``format="rfc7662"``: POST ``token=...&token_type_hint=access_token``, with HTTP Basic auth
    when ``client_id`` and ``client_secret`` are given. ``format="facebook"``: GET ``debug_token``
    with the app token ``client_id|client_secret``; a token issued to another app is refused,
    or a token for any app that trusts Facebook would log in here as its user.

    ``timeout`` bounds the whole exchange of one `verify`. The HTTP session is created in the
    first `verify`'s loop; `close` closes it (a later `verify` opens a new one).
    """

    def __init__(
        self,
        *,
        url: str,
        format: Literal["rfc7662", "facebook"] = "rfc7662",
        client_id: str | None = None,
        client_secret: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        try:
            parts = urllib.parse.urlsplit(url)
            parts.port  # noqa: B018 -- raises ValueError for a port that is not 0-65535
        except ValueError:
            raise ValueError("url is not a valid URL") from None
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be an http:// or https:// URL with a host")
        if parts.username is not None or parts.password is not None:
            raise ValueError("url must not hold credentials: give client_id and client_secret")
        if format not in ("rfc7662", "facebook"):
            raise ValueError("format must be 'rfc7662' or 'facebook'")
        if client_id == "" or client_secret == "":
            raise ValueError("client_id and client_secret must not be empty")
        if (client_id is None) != (client_secret is None):
            raise ValueError("client_id and client_secret go together: give both or neither")
        if format == "facebook" and client_id is None:
            raise ValueError("the facebook format requires client_id and client_secret")
        if not isinstance(timeout, int | float) or not timeout > 0 or not math.isfinite(timeout):
            raise ValueError("timeout must be a positive number of seconds")
        self.url = urllib.parse.urlunsplit(parts._replace(fragment=""))
        self.format: Literal["rfc7662", "facebook"] = format
        self.client_id = client_id
        self._client_secret = client_secret
        self.timeout = float(timeout)
        # For the log and for reasons: never the query (a configured one could hold anything).
        self._where = f"{parts.netloc}{parts.path}"
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"Introspector(url={self._where!r}, format={self.format!r})"

    async def verify(self, access_token: str) -> Identity:
        """Whose ``access_token`` is, as the provider says; raises `ProofRejected` for any
        failure (unreachable, too slow, a bad answer, or the provider says no)."""
        if not isinstance(access_token, str) or not access_token:
            raise ProofRejected("no access token to introspect")
        answer = await self._ask(access_token)
        if self.format == "facebook":
            return self._facebook(answer, access_token)
        return self._rfc7662(answer, access_token)

    async def close(self) -> None:
        """Close the HTTP session (idempotent)."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    # --- The exchange ------------------------------------------------------------------------

    def _session_now(self) -> aiohttp.ClientSession:
        """The session, created in the running loop at first use (no await here: concurrent
        first calls share one)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                cookie_jar=aiohttp.DummyCookieJar(),  # each answer stands on its own
                trust_env=False,
            )
        return self._session

    async def _ask(self, access_token: str) -> Any:
        """The provider's answer as parsed JSON; every failure is a `ProofRejected`."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self._exchange(access_token)
        except ProofRejected as exc:
            log.warning("%s", exc)
            raise
        except TimeoutError:
            reason = f"introspection at {self._where} did not answer within {self.timeout:g}s"
        except aiohttp.ClientError as exc:  # its text may hold the URL and so the secrets
            reason = f"introspection at {self._where} failed: {type(exc).__name__}"
        except OSError as exc:
            reason = f"introspection at {self._where} failed: {type(exc).__name__}"
        except Exception as exc:  # never another type for the caller to foresee
            reason = f"introspection at {self._where} failed unexpectedly: {type(exc).__name__}"
        log.warning("%s", reason)
        raise ProofRejected(reason) from None

    async def _exchange(self, access_token: str) -> Any:
        session = self._session_now()
        request: Any
        if self.format == "facebook":
            app_token = f"{self.client_id}|{self._client_secret}"
            request = session.get(
                self.url,
                params={"input_token": access_token, "access_token": app_token},
                headers={"Accept": "application/json"},
                allow_redirects=False,
            )
        else:
            headers = {"Accept": "application/json"}
            if self.client_id is not None and self._client_secret is not None:
                headers["Authorization"] = _basic_auth(self.client_id, self._client_secret)
            request = session.post(
                self.url,
                data={"token": access_token, "token_type_hint": "access_token"},
                headers=headers,
                allow_redirects=False,  # a redirect would carry the token and the credentials on
            )
        async with request as response:
            if not 200 <= response.status < 300:
                raise ProofRejected(
                    f"introspection at {self._where} answered HTTP {response.status}"
                )
            body = await self._read(response)
        try:
            return json.loads(body, parse_constant=_reject_constant)
        except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included
            raise ProofRejected(f"introspection at {self._where} answered with no JSON") from None

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        """The body, refused as soon as it is known to exceed `MAX_ANSWER_BYTES`."""
        too_big = f"introspection at {self._where} answered more than {MAX_ANSWER_BYTES} bytes"
        if response.content_length is not None and response.content_length > MAX_ANSWER_BYTES:
            raise ProofRejected(too_big)
        body = bytearray()
        async for chunk in response.content.iter_chunked(_CHUNK):
            body += chunk
            if len(body) > MAX_ANSWER_BYTES:
                raise ProofRejected(too_big)
        return bytes(body)

    # --- The answers -------------------------------------------------------------------------

    def _rfc7662(self, answer: Any, access_token: str) -> Identity:
        if not isinstance(answer, dict):
            raise ProofRejected("the introspection answer is not a JSON object")
        if answer.get("active") is not True:
            raise ProofRejected("the provider says the access token is not active")
        subject = answer.get("sub")
        if not isinstance(subject, str) or not subject:
            raise ProofRejected("the introspection answer has no sub")
        self._check_expiry(answer, "exp", zero_is_never=False)
        return Identity(subject=subject, claims=_without(answer, access_token))

    def _facebook(self, answer: Any, access_token: str) -> Identity:
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, dict):
            raise ProofRejected("the debug_token answer has no data object")
        if data.get("is_valid") is not True:
            error = data.get("error")
            code = error.get("code") if isinstance(error, dict) else None
            detail = (
                f" (error {code})" if isinstance(code, int) and not isinstance(code, bool) else ""
            )
            raise ProofRejected(f"Facebook says the access token is not valid{detail}")
        user_id = data.get("user_id")
        if not isinstance(user_id, str) or not user_id:
            raise ProofRejected("the debug_token answer has no user_id")
        if self.client_id is not None and data.get("app_id") != self.client_id:
            raise ProofRejected("the access token was issued to another Facebook app")
        self._check_expiry(data, "expires_at", zero_is_never=True)
        return Identity(subject=user_id, claims=_without(data, access_token))

    @staticmethod
    def _check_expiry(answer: Mapping[str, Any], key: str, *, zero_is_never: bool) -> None:
        if key not in answer:
            return
        expires = answer[key]
        if not _number(expires):
            raise ProofRejected(f"the introspection answer's {key} is not a number")
        if zero_is_never and expires == 0:
            return
        if expires <= time.time():
            raise ProofRejected("the access token has expired")


def _without(answer: Mapping[str, Any], access_token: str) -> dict[str, Any]:
    """The answer as claims, less any value that is the token itself (an odd provider may echo
    it, and claims may be logged)."""
    return {key: value for key, value in answer.items() if value != access_token}
