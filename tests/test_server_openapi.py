"""The OpenAPI document: served by the server, kept current in docs/, covering every route."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import aiohttp
import attrs

from corelogin.server import RunningServer, ServerConfig, start_server
from corelogin.server.app import ROUTES
from corelogin.server.openapi import document, dumps
from corelogin.wire import PASSWORD_MAX_BYTES, PATHS, USERNAME_MAX_CHARS

ROOT = Path(__file__).resolve().parent.parent


async def test_the_server_serves_the_document(server: RunningServer) -> None:
    async with aiohttp.ClientSession() as http, http.get(server.url + "/openapi.json") as r:
        assert r.status == 200
        assert await r.json() == document()


def test_the_copy_in_docs_is_current() -> None:
    kept = (ROOT / "docs" / "openapi.json").read_text()
    assert kept == dumps(), "run: corelogin openapi > docs/openapi.json"


def test_every_route_is_documented_with_its_method() -> None:
    documented = {
        (path, method.upper()) for path, item in document()["paths"].items() for method in item
    }
    routed = {(route.path, route.method) for route in ROUTES}  # type: ignore[attr-defined]
    assert documented == routed


def test_limits_come_from_the_wire_contract() -> None:
    login = document()["paths"]["/v1/users/login"]["post"]
    schema = login["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["username"]["maxLength"] == USERNAME_MAX_CHARS
    assert str(PASSWORD_MAX_BYTES) in schema["properties"]["password"]["description"]
    assert schema["required"] == ["scope"]
    # username, email or provider; the password with the first two, a client_id with the last
    assert [alt["required"] for alt in schema["oneOf"]] == [["username"], ["email"], ["provider"]]
    needs = [(rule["if"]["required"], rule["then"]["required"]) for rule in schema["allOf"]]
    assert needs == [
        (["username"], ["password"]),
        (["email"], ["password"]),
        (["provider"], ["client_id"]),
    ]
    assert "603" in login["responses"]["401"]["description"]
    assert "611" in login["responses"]["401"]["description"]


def test_the_openapi_command_prints_it() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "corelogin.cli", "openapi"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(done.stdout) == document()


async def test_the_served_document_has_this_servers_password_minimum(
    server_config: ServerConfig,
) -> None:
    config = attrs.evolve(server_config, min_password_length=12)
    async with (
        await start_server(config) as running,
        aiohttp.ClientSession() as session,
        session.get(running.url + PATHS["openapi"]) as response,
    ):
        served = await response.json()
    create = served["paths"][PATHS["create"]]["post"]["requestBody"]["content"]
    schema = create["application/json"]["schema"]
    assert schema["properties"]["password"]["minLength"] == 12
