"""The JSON envelope on the server side: reading a call, answering it, and turning every
failure into ``{"error", "status"}`` (never a traceback, never an HTML page)."""

from __future__ import annotations

import hmac
import json
import logging
import math
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from aiohttp import web

from corelogin.server.connections import arrived
from corelogin.server.context import CONFIG
from corelogin.server.store import StoreUnavailable
from corelogin.wire import APP_KEY_HEADER, MAX_BODY_BYTES, ApiError, Status, check_scope

__all__ = ["envelope_middleware", "ok", "read_call"]

log = logging.getLogger("corelogin.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# What a call gets while the database cannot answer: nothing it did not commit happened.
STORE_DOWN = ApiError(
    Status.SERVER_ERROR, "the database is unavailable; try again", http_status=503, retry_after=1
)

# Strict JSON out: NaN and Infinity are not JSON, and would break every strict parser.
_dumps = partial(json.dumps, allow_nan=False)


def ok(result: Any, **extra: Any) -> web.Response:
    return web.json_response({"result": result, **extra}, dumps=_dumps)


def _error_response(error: ApiError) -> web.Response:
    response = web.json_response(
        {"error": error.message, "status": int(error.status)},
        status=error.http_status,
        dumps=_dumps,
    )
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def _finite(text: str) -> float:
    value = float(text)  # 1e400 reads as inf
    if not math.isfinite(value):
        raise ApiError(Status.WRONG_TYPE, "numbers must be finite")
    return value


def _not_a_number(name: str) -> Any:
    raise ApiError(Status.WRONG_TYPE, f"{name} is not JSON")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    table = dict(pairs)
    if len(table) != len(pairs):
        raise ApiError(Status.WRONG_TYPE, "a JSON object has the same key twice")
    return table


def loads(raw: bytes) -> Any:
    """Strict JSON in: no NaN or Infinity, no number too big to be finite, no key twice."""
    return json.loads(
        raw,
        parse_float=_finite,
        parse_constant=_not_a_number,
        object_pairs_hook=_no_duplicate_keys,
    )


@web.middleware
async def envelope_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.body_exists:
        arrived(request)  # nothing more to wait for; read_call says so for a body
    try:
        return await handler(request)
    except ApiError as exc:
        return _error_response(exc)
    except StoreUnavailable as exc:  # the database is down or restarting: try again soon
        log.warning("%s %s: %s", request.method, request.path, exc)
        return _error_response(STORE_DOWN)
    except ConnectionError:  # the client went away, or was too slow and was cut off
        log.debug("the connection closed before %s %s was read", request.method, request.path)
        return _error_response(ApiError(Status.NETWORK_ERROR, "connection closed"))
    except web.HTTPRequestEntityTooLarge:
        message = f"request body is larger than {MAX_BODY_BYTES} bytes"
        return _error_response(ApiError(Status.TOO_LONG, message))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        # Unknown path, wrong method and the like: the request does not follow the wire contract.
        message = exc.reason
        if exc.status == 404:
            message = (
                f"no endpoint at {request.path}: the calls are under /v1/ (give init() the "
                "server's base URL, without a path)"
            )
        response = _error_response(ApiError(Status.INVALID_RESULT, message, http_status=exc.status))
        if "Allow" in exc.headers:  # 405 says which methods the path takes
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        return _error_response(ApiError(Status.SERVER_ERROR, "server error"))


async def read_call(request: web.Request) -> tuple[str, dict[str, Any]]:
    """Check the app key and read the JSON body of a call: returns (scope, body).

    611 for a wrong key; 415 or 801 for a body that is not a JSON object; 806 when too large.
    """
    expected = request.app[CONFIG].app_key.encode()
    given = request.headers.get(APP_KEY_HEADER, "").encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(given, expected):
        raise ApiError(Status.BAD_APP_KEY, "app key missing or wrong")
    if request.content_type != "application/json":
        raise ApiError(Status.WRONG_TYPE, "request body must be application/json", http_status=415)
    raw = await request.read()
    arrived(request)
    try:
        body = loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise ApiError(Status.WRONG_TYPE, "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(Status.WRONG_TYPE, "request body must be a JSON object")
    scope = body.pop("scope", None)
    if scope is None:
        raise ApiError(Status.MISSING, "scope is required")
    return check_scope(scope), body
