"""Requests sent straight to the server: every malformed one gets a clean 4xx with a code."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

import corelogin
from corelogin.server import RunningServer
from corelogin.wire import APP_KEY_HEADER, MAX_BODY_BYTES, PATHS
from tests.helpers import APP_KEY

JSON = {"Content-Type": "application/json"}
KEY = {APP_KEY_HEADER: APP_KEY}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def answer(
    http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, Any]:
    async with http.request(method, url, **kwargs) as response:
        assert response.content_type == "application/json"
        return response.status, await response.json()


async def test_health_answers_ok_once_ready(
    http: aiohttp.ClientSession, server: RunningServer
) -> None:
    assert await answer(http, "GET", server.url + "/health") == (200, {"result": "ok"})


@pytest.mark.parametrize(
    ("headers", "data", "http_status", "status"),
    [
        ({**JSON}, b'{"scope": "default"}', 401, 611),
        ({**JSON, APP_KEY_HEADER: "wrong"}, b'{"scope": "default"}', 401, 611),
        ({**KEY, "Content-Type": "text/plain"}, b"username=Donna", 415, 801),
        ({**KEY, **JSON}, b'{"username": "Donna", "pass', 400, 801),
        ({**KEY, **JSON}, b"\xff\xfe\x00garbage", 400, 801),
        ({**KEY, **JSON}, b'["Donna", "secret"]', 400, 801),
        ({**KEY, **JSON}, b'{"username": "Donna", "password": "x"}', 400, 804),
        ({**KEY, **JSON}, b'{"scope": 5, "username": "Donna", "password": "x"}', 400, 801),
        ({**KEY, **JSON}, b'{"scope": "default", "username": 5, "password": "x"}', 400, 801),
        ({**KEY, **JSON}, b'{"scope": "default", "password": "x"}', 400, 804),
        ({**KEY, **JSON}, b'{"scope": "default", "username": "", "password": "x"}', 400, 805),
        (
            {**KEY, **JSON},
            b'{"scope": "default", "username": "D", "password": "\\ud800"}',
            400,
            801,
        ),
        (
            {**KEY, **JSON},
            b'{"scope": "default", "username": "\\udfff", "password": "x"}',
            400,
            801,
        ),
        ({**KEY, **JSON}, b"[" * 30_000 + b"]" * 30_000, 400, 801),
    ],
    ids=[
        "no-key",
        "wrong-key",
        "not-json-content-type",
        "truncated-json",
        "not-utf8",
        "json-array",
        "no-scope",
        "scope-not-string",
        "username-not-string",
        "no-username",
        "empty-username",
        "lone-surrogate-password",
        "lone-surrogate-username",
        "deeply-nested-json",
    ],
)
async def test_malformed_login_gets_4xx_with_a_code(
    http: aiohttp.ClientSession,
    server: RunningServer,
    headers: dict[str, str],
    data: bytes,
    http_status: int,
    status: int,
) -> None:
    got_http, body = await answer(
        http, "POST", server.url + PATHS["login"], headers=headers, data=data
    )
    assert (got_http, body["status"]) == (http_status, status)
    assert isinstance(body["error"], str)
    assert body["error"]
    assert "Traceback" not in body["error"]


async def test_app_key_that_is_not_utf8_gets_611(server: RunningServer) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    body = b'{"scope": "default", "username": "Donna", "password": "x"}'
    writer.write(
        b"POST "
        + PATHS["login"].encode()
        + b" HTTP/1.1\r\nHost: x\r\n"
        + APP_KEY_HEADER.encode()
        + b": \xff\xfekey\r\nContent-Type: application/json\r\n"
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\nConnection: close\r\n\r\n"
        + body
    )
    answer_bytes = await reader.read()
    writer.close()
    head, _, payload = answer_bytes.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401")
    assert json.loads(payload)["status"] == 611


async def test_oversized_body_gets_413_with_806(
    http: aiohttp.ClientSession, server: RunningServer
) -> None:
    data = b'{"scope": "default", "username": "' + b"x" * MAX_BODY_BYTES + b'"}'
    status, body = await answer(
        http, "POST", server.url + PATHS["create"], headers={**KEY, **JSON}, data=data
    )
    assert (status, body["status"]) == (413, 806)


async def test_overlong_password_sent_directly_gets_806(
    http: aiohttp.ClientSession, server: RunningServer
) -> None:
    body = {"scope": "default", "username": "Donna", "password": "p" * 1025}
    status, answer_body = await answer(
        http, "POST", server.url + PATHS["login"], headers=KEY, json=body
    )
    assert (status, answer_body["status"]) == (413, 806)


@pytest.mark.parametrize(
    ("method", "path", "http_status"),
    [("GET", PATHS["login"], 405), ("POST", "/v1/users/nothing", 404), ("GET", "/", 404)],
)
async def test_unknown_routes_get_json_errors(
    http: aiohttp.ClientSession, server: RunningServer, method: str, path: str, http_status: int
) -> None:
    status, body = await answer(http, method, server.url + path, headers=KEY)
    assert status == http_status
    assert body["status"] == 800
    assert isinstance(body["error"], str)


async def test_store_failure_is_a_json_500_without_details(
    http: aiohttp.ClientSession, server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    await server.store.close()  # the next query fails inside the handler
    status, body = await answer(
        http,
        "POST",
        server.url + PATHS["login"],
        headers=KEY,
        json={"scope": "default", "username": "Donna", "password": "secret-password"},
    )
    assert (status, body) == (500, {"error": "server error", "status": 810})
    assert "secret-password" not in caplog.text
    await server.store.open()


# -- strict JSON and flat `extra`: nothing the server cannot answer in valid JSON gets stored ----

PASS = "correct horse battery"


REFUSED_BODIES = [
    ("NaN", b'{"scope": "default", "username": "D", "password": "%s", "extra": {"a": NaN}}'),
    ("inf", b'{"scope": "default", "username": "D", "password": "%s", "extra": {"a": Infinity}}'),
    ("-inf", b'{"scope": "default", "username": "D", "password": "%s", "extra": {"a": -Infinity}}'),
    ("1e400", b'{"scope": "default", "username": "D", "password": "%s", "extra": {"a": 1e400}}'),
    (
        "nested",
        b'{"scope": "default", "username": "D", "password": "%s", "extra": {"a": {"b": 1}}}',
    ),
    ("list", b'{"scope": "default", "username": "D", "password": "%s", "extra": {"a": [1]}}'),
    ("null", b'{"scope": "default", "username": "D", "password": "%s", "extra": {"a": null}}'),
    ("dup key", b'{"scope": "default", "username": "D", "username": "E", "password": "%s"}'),
    ("NUL", b'{"scope": "default", "username": "D", "password": "%s", "group": "a\\u0000b"}'),
    ("scope ctrl", b'{"scope": "def\\u0001ault", "username": "D", "password": "%s"}'),
]


@pytest.mark.parametrize(("why", "body"), REFUSED_BODIES, ids=[why for why, _ in REFUSED_BODIES])
async def test_create_refuses_what_strict_json_or_a_flat_extra_cannot_hold(
    http: aiohttp.ClientSession, server: RunningServer, why: str, body: bytes
) -> None:
    url = server.url + PATHS["create"]
    status, payload = await answer(
        http, "POST", url, data=body.replace(b"%s", PASS.encode()), headers={**KEY, **JSON}
    )
    assert (status, payload["status"]) == (400, 801), (why, payload)
    login = b'{"scope": "default", "username": "D", "password": "%s"}'
    status, payload = await answer(
        http,
        "POST",
        server.url + PATHS["login"],
        data=login.replace(b"%s", PASS.encode()),
        headers={**KEY, **JSON},
    )
    assert payload["status"] == 603, "nothing was written: there is no user D"


async def test_a_flat_extra_with_every_kind_of_value_round_trips(
    http: aiohttp.ClientSession, server: RunningServer
) -> None:
    extra = {"name": "Tina", "level": 3, "ratio": 0.5, "big": 10**30, "pro": True}
    body = {"scope": "default", "username": "Tina", "password": PASS, "extra": extra}
    status, payload = await answer(
        http, "POST", server.url + PATHS["create"], json=body, headers=KEY
    )
    assert status == 200, payload
    assert payload["result"]["extra"] == extra


async def test_a_server_url_with_a_path_gets_a_hint(server: RunningServer) -> None:
    async with corelogin.init(server.url + "/api", APP_KEY) as core:
        event = await core.users.login({"username": "Donna", "password": PASS})
    assert event.status == 800
    assert "base URL" in (event.error or "")


async def test_a_wrong_method_gets_405_with_allow(
    http: aiohttp.ClientSession, server: RunningServer
) -> None:
    async with http.get(server.url + PATHS["login"], headers=KEY) as response:
        assert response.status == 405
        assert "POST" in response.headers.get("Allow", "")
        assert (await response.json())["status"] == 800
