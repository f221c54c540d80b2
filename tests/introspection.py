"""A fake token introspection endpoint for the tests (aiohttp on 127.0.0.1, a port the OS picks).

``async with IntrospectionServer() as fake: ...`` or the `introspection_server` fixture. It
serves RFC 7662 introspection at `url` and Facebook's ``debug_token`` at `facebook_url`,
knows the tokens in `tokens`, records each request (`requests`) and can misbehave (`mode`).
It runs in the test's own loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import time
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any, Literal

import attrs
import pytest
from aiohttp import web

__all__ = ["IntrospectionRequest", "IntrospectionServer", "Mode", "introspection_server"]

# ok: answers as a provider would; garbage: 200 with a body that is not JSON; slow: answers
# after `slow_seconds` (or never: closing the server ends the wait); 500: an error page;
# shape: JSON of the wrong shape; big / big-chunked: a valid answer padded past 64 KiB, with a
# Content-Length / streamed without one; fixed: `answer` as JSON (bytes: as they are), whatever
# was asked.
Mode = Literal["ok", "garbage", "slow", "500", "shape", "big", "big-chunked", "fixed"]

_BIG = 70 * 1024


@attrs.frozen
class IntrospectionRequest:
    """One request as the server got it."""

    method: str
    path: str
    # The form body (POST) or the query (GET); the last value of a repeated name.
    params: dict[str, str]
    authorization: str | None

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        """The Basic credentials, form-decoded (RFC 6749 §2.3.1), or None."""
        scheme, _, value = (self.authorization or "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        if not sep:
            return None
        return urllib.parse.unquote_plus(user), urllib.parse.unquote_plus(password)


class IntrospectionServer:
    """Valid tokens are the keys of `tokens` (value: the subject); `expires` gives a token an
    expiry (epoch seconds, answered as ``exp`` / ``expires_at``: a past one is still answered
    active, to test the client's own check). ``credentials=(client_id, client_secret)`` makes
    both endpoints refuse other callers (401 / Facebook's 400), as real providers do."""

    def __init__(
        self,
        *,
        tokens: dict[str, str] | None = None,
        app_id: str = "app-1",
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.tokens: dict[str, str] = dict(tokens or {})
        self.expires: dict[str, float] = {}
        self.app_id = app_id  # the app the Facebook endpoint says each token was issued to
        self.credentials = credentials
        self.mode: Mode = "ok"
        self.answer: Any = None  # for mode "fixed": JSON-encoded, unless bytes
        self.slow_seconds = 30.0
        self.requests: list[IntrospectionRequest] = []
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The RFC 7662 endpoint."""
        return f"{self.base_url}/introspect"

    @property
    def facebook_url(self) -> str:
        """The Facebook ``debug_token`` endpoint."""
        return f"{self.base_url}/debug_token"

    async def start(self) -> IntrospectionServer:
        app = web.Application()
        app.router.add_post("/introspect", self._introspect)
        app.router.add_get("/debug_token", self._debug_token)
        # shutdown_timeout: a handler still running at close has 1 s (slow ones end at once).
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = runner.addresses[0][1]
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        return self

    async def close(self) -> None:
        self._closing.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> IntrospectionServer:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- Handlers ----------------------------------------------------------------------------

    async def _record(self, request: web.Request) -> dict[str, str]:
        if request.method == "POST":
            params = {key: str(value) for key, value in (await request.post()).items()}
        else:
            params = dict(request.query)
        self.requests.append(
            IntrospectionRequest(
                method=request.method,
                path=request.path,
                params=params,
                authorization=request.headers.get("Authorization"),
            )
        )
        return params

    async def _respond(
        self, request: web.Request, *, good: Any, valid: Any, shape: Any
    ) -> web.StreamResponse:
        """The answer of the current mode: ``good`` is the honest one; ``valid`` a well-formed
        yes (what "slow" and "big" pad or delay); ``shape`` a yes in the wrong shape."""
        if self.mode == "ok":
            return web.json_response(good)
        if self.mode == "shape":
            return web.json_response(shape)
        if self.mode == "fixed":
            body = self.answer if isinstance(self.answer, bytes) else json.dumps(self.answer)
            return web.Response(body=body, content_type="application/json")
        if self.mode == "garbage":
            return web.Response(text="<html>not json</html>", content_type="text/html")
        if self.mode == "500":
            return web.Response(status=500, text="internal error")
        if self.mode == "slow":
            # Closing the server ends the wait: a slow answer never holds up shutdown.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.slow_seconds)
            return web.json_response(valid)
        padded = json.dumps({**valid, "padding": "x" * _BIG}).encode()
        if self.mode == "big":
            return web.Response(body=padded, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()  # no Content-Length: the client must count
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):  # the client may stop reading early
            for start in range(0, len(padded), 4096):
                await response.write(padded[start : start + 4096])
            await response.write_eof()
        return response

    async def _introspect(self, request: web.Request) -> web.StreamResponse:
        params = await self._record(request)
        if self.credentials is not None and self.requests[-1].basic_auth != self.credentials:
            return web.json_response(
                {"error": "invalid_client"},
                status=401,
                headers={"WWW-Authenticate": 'Basic realm="introspection"'},
            )
        token = params.get("token")
        if not token:
            return web.json_response({"error": "invalid_request"}, status=400)
        now = int(time.time())
        subject = self.tokens.get(token)
        valid: dict[str, Any] = {"active": True, "sub": subject or "someone", "iat": now}
        good: dict[str, Any] = {"active": False}
        if subject is not None:
            good = {
                "active": True,
                "sub": subject,
                "client_id": self.app_id,
                "token_type": "Bearer",
                "scope": "openid profile",
                "iat": now,
            }
            if token in self.expires:
                good["exp"] = self.expires[token]
        shape = [{"active": True, "sub": subject or "someone"}]
        return await self._respond(request, good=good, valid=valid, shape=shape)

    async def _debug_token(self, request: web.Request) -> web.StreamResponse:
        params = await self._record(request)
        if self.credentials is not None:
            client_id, client_secret = self.credentials
            if params.get("access_token") != f"{client_id}|{client_secret}":
                error = {"message": "Invalid OAuth access token signature.", "code": 190}
                return web.json_response({"error": {**error, "type": "OAuthException"}}, status=400)
        token = params.get("input_token", "")
        subject = self.tokens.get(token)
        now = int(time.time())
        data: dict[str, Any] = {
            "error": {"code": 190, "message": "Invalid OAuth access token."},
            "is_valid": False,
            "scopes": [],
        }
        if subject is not None:
            data = {
                "app_id": self.app_id,
                "type": "USER",
                "application": "Test app",
                "expires_at": int(self.expires.get(token, 0)),
                "is_valid": True,
                "issued_at": now,
                "scopes": ["email", "public_profile"],
                "user_id": subject,
            }
        valid = {"data": {"app_id": self.app_id, "is_valid": True, "user_id": subject or "1"}}
        shape = {"is_valid": True, "user_id": subject or "1", "app_id": self.app_id}
        return await self._respond(request, good={"data": data}, valid=valid, shape=shape)


@pytest.fixture
async def introspection_server() -> AsyncIterator[IntrospectionServer]:
    """A fake introspection endpoint in the test's loop, knowing no token yet."""
    async with IntrospectionServer() as server:
        yield server
