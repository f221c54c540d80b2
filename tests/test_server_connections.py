"""Connection limits and timeouts (corelogin.server.connections), attacked with raw sockets.

Attackers connect from 127.0.0.2 (all of 127.0.0.0/8 is loopback on Linux) so that the
per-address limit tells them from the test's own requests, which come from 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp
import attrs
import pytest

from corelogin.server import RunningServer, ServerConfig, start_server
from corelogin.wire import APP_KEY_HEADER, PATHS
from tests.helpers import APP_KEY

pytestmark = pytest.mark.timeout(60)

ATTACKER = "127.0.0.2"
TIMEOUT = 0.5  # request_timeout and keepalive_timeout of these servers


@pytest.fixture
async def guarded(server_config: ServerConfig) -> AsyncIterator[RunningServer]:
    config = attrs.evolve(
        server_config,
        request_timeout=TIMEOUT,
        keepalive_timeout=TIMEOUT,
        max_connections=400,
        max_connections_per_address=100,
    )
    async with await start_server(config) as running:
        yield running


def address(server: RunningServer) -> tuple[str, int]:
    parts = urlsplit(server.url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


async def connect(
    server: RunningServer, source: str = ATTACKER
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = address(server)
    return await asyncio.open_connection(host, port, local_addr=(source, 0))


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> float:
    """Seconds until the server closes the connection (read gives EOF or a reset)."""
    started = time.monotonic()
    try:
        while await asyncio.wait_for(reader.read(65536), seconds):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - started


async def health_latency(server: RunningServer) -> float:
    started = time.monotonic()
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.url + PATHS["health"]) as response,
    ):
        assert response.status == 200
    return time.monotonic() - started


async def test_a_silent_connection_is_closed_after_the_request_timeout(
    guarded: RunningServer,
) -> None:
    reader, writer = await connect(guarded)
    try:
        assert await closed_within(reader, 5) < TIMEOUT + 1
    finally:
        writer.close()


async def test_headers_dribbled_slowly_are_cut_off(guarded: RunningServer) -> None:
    reader, writer = await connect(guarded)
    started = time.monotonic()
    request = f"POST {PATHS['login']} HTTP/1.1\r\nHost: x\r\n{APP_KEY_HEADER}: {APP_KEY}\r\n"
    try:
        for byte in request.encode():  # slowloris: a byte every 50 ms, never the blank line
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.05)
            if reader.at_eof():
                break
        assert await closed_within(reader, 5) >= 0
    except ConnectionResetError:
        pass
    finally:
        writer.close()
    assert time.monotonic() - started < TIMEOUT + 1.5


async def test_a_body_dribbled_slowly_is_cut_off_quietly(
    guarded: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    reader, writer = await connect(guarded)
    body = b'{"scope": "default", "username": "Donna", "password": "correct horse battery"}'
    head = (
        f"POST {PATHS['login']} HTTP/1.1\r\nHost: x\r\n{APP_KEY_HEADER}: {APP_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    started = time.monotonic()
    try:
        writer.write(head.encode())
        for byte in body:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.05)
            if reader.at_eof():
                break
    except ConnectionResetError:
        pass
    finally:
        writer.close()
    assert time.monotonic() - started < TIMEOUT + 1.5
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_an_idle_keep_alive_connection_is_closed(guarded: RunningServer) -> None:
    reader, writer = await connect(guarded)
    try:
        writer.write(f"GET {PATHS['health']} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        assert await closed_within(reader, 5) < TIMEOUT + 1.5  # kept alive, then closed
    finally:
        writer.close()


async def test_one_address_holds_at_most_its_limit_and_refusals_are_logged_once(
    guarded: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="corelogin.server")
    held = [await connect(guarded) for _ in range(100)]  # the limit: all are kept
    try:
        await asyncio.sleep(0.1)
        assert not any(reader.at_eof() for reader, _ in held)
        extra = [await connect(guarded) for _ in range(50)]  # over the limit: closed at once
        try:
            for reader, _ in extra:
                assert await closed_within(reader, 2) < 1
        finally:
            for _, writer in extra:
                writer.close()
        assert await health_latency(guarded) < 1, "another address still gets in"
    finally:
        for _, writer in held:
            writer.close()
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1, [r.getMessage() for r in refusals]


async def test_health_answers_fast_while_hundreds_of_slow_connections_are_held(
    server_config: ServerConfig,
) -> None:
    """300 half-open connections from three addresses (each at its limit of 100), for a few
    seconds: /health from a fourth answers in well under a second throughout."""
    config = attrs.evolve(
        server_config, request_timeout=3.0, max_connections=1000, max_connections_per_address=100
    )
    async with await start_server(config) as running:
        held = [await connect(running, source) for source in ATTACKER_SOURCES for _ in range(120)]
        try:
            for _, writer in held:
                writer.write(b"POST /v1/users/login HTTP/1.1\r\n")  # and nothing more
            latencies = []
            for _ in range(10):
                latencies.append(await health_latency(running))
                await asyncio.sleep(0.2)
            assert max(latencies) < 0.5, latencies
            open_now = sum(not reader.at_eof() for reader, _ in held)
            assert open_now <= 300
        finally:
            for _, writer in held:
                writer.close()


ATTACKER_SOURCES = ("127.0.0.2", "127.0.0.3", "127.0.0.4")


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Corelogin-Key: secret\x01value\r\n\r\n",
        b"POST /v1/users/login HTTP/1.1\r\nContent-Length: nope-secret\r\n\r\n",
        b"BR\x00KEN secret-value\r\n\r\n",
    ],
    ids=["control-char-in-header", "bad-content-length", "not-http"],
)
async def test_a_request_aiohttp_cannot_parse_gets_the_json_envelope_and_no_echo(
    guarded: RunningServer, request_bytes: bytes
) -> None:
    reader, writer = await connect(guarded, "127.0.0.1")
    try:
        writer.write(request_bytes)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"400", answer
    assert b"Content-Type: application/json" in head
    assert b"Server: corelogin\r\n" in head + b"\r\n"
    assert json.loads(body) == {"error": "the request is not valid HTTP", "status": 801}
    assert b"secret" not in answer


async def test_the_server_header_names_no_versions(guarded: RunningServer) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(guarded.url + PATHS["health"]) as response,
    ):
        assert response.headers["Server"] == "corelogin"
