"""HTTP to the reference server: one aiohttp session, retries only while nothing was sent."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import aiohttp
import attrs

from corelogin.wire import APP_KEY_HEADER, ApiError, Status

__all__ = ["Retry", "Transport"]


@attrs.frozen
class Retry:
    """Capped exponential backoff with full jitter, for connection failures only."""

    attempts: int = 2
    initial: float = 0.1
    maximum: float = 2.0

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.maximum, self.initial * 2**attempt))  # noqa: S311 (jitter)


class Transport:
    """Owns the `Core`'s one `aiohttp.ClientSession`, created inside the loop that uses it."""

    def __init__(self, server: str, key: str, retry: Retry) -> None:
        self._base = server.rstrip("/")
        self._headers = {APP_KEY_HEADER: key, "Content-Type": "application/json"}
        self._retry = retry
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=None),  # the Core enforces its own
                raise_for_status=False,
            )
        return self._session

    async def post(
        self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Send a call (with ``headers`` besides the app key's) and return the success
        envelope; failures raise `ApiError`."""
        data = json.dumps(body).encode()
        url = self._base + path
        attempt = 0
        while True:
            try:
                async with self._client().post(url, data=data, headers=headers) as response:
                    raw = await response.read()
                    try:
                        return decode(response.status, raw)
                    except ApiError as exc:
                        exc.retry_after = _retry_after(response.headers.get("Retry-After"))
                        raise
            except aiohttp.ClientConnectorError as exc:
                # Nothing reached the server: safe to try again.
                if attempt >= self._retry.attempts:
                    raise ApiError(
                        Status.NETWORK_ERROR, f"cannot connect to the server: {exc.os_error}"
                    ) from None
                await asyncio.sleep(self._retry.delay(attempt))
                attempt += 1
            except (aiohttp.ClientError, OSError) as exc:
                # The server may have the request: never retried.
                raise ApiError(
                    Status.NETWORK_ERROR, f"no response from the server ({type(exc).__name__})"
                ) from None

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def abandon(self) -> None:
        """Drop the session when its loop has ended and `close` can no longer be awaited:
        the session is marked closed and its pooled connections are let go, without warnings."""
        if self._session is None:
            return
        session, self._session = self._session, None
        connector = session.connector
        session.detach()
        if connector is not None:
            # The synchronous part of aiohttp's connector close; with the loop gone it only
            # marks the connector closed and forgets its connections.
            connector._close()


def _retry_after(value: str | None) -> int | None:
    """Retry-After in seconds (829); the HTTP-date form is not used by corelogin."""
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip())


def decode(http_status: int, raw: bytes) -> dict[str, Any]:
    """Check a response against the envelope of DESIGN.md §3."""
    try:
        payload = json.loads(raw)
    except ValueError:
        raise ApiError(
            Status.BAD_JSON, f"the server's answer (HTTP {http_status}) is not valid JSON"
        ) from None
    if isinstance(payload, dict):
        error, status = payload.get("error"), payload.get("status")
        if isinstance(error, str) and isinstance(status, int) and not isinstance(status, bool):
            raise ApiError(status, error)
        if 200 <= http_status < 300 and "result" in payload:
            return payload
    hint = " (is the server URL right? init() takes the server's base URL)" * (http_status == 404)
    raise ApiError(
        Status.INVALID_RESULT,
        f"the server's answer (HTTP {http_status}) is not a corelogin answer{hint}",
    )
