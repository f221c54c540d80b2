"""What the SDK costs over bare aiohttp: the same login, sent both ways, alternately.

The server runs in a subprocess with cheap hashes (``--insecure-fast-hash``), so that the time
measured is mostly the client's. Each round sends one login through the SDK (asyncio mode,
``await core.users.login(...)``) and one through ``aiohttp.ClientSession.post``, swapping which
goes first every round. The raw side sends the very request the SDK sends: same URL, same
headers (app key, ``Content-Type: application/json``) and the same body bytes, built the SDK's
way (``wire.check_params`` plus the scope, ``json.dumps(...).encode()``, posted as ``data=``).
Before measuring, one request of each is captured by a throwaway in-process listener and the
two are asserted to be byte for byte identical. Goal: SDK/raw <= 1.05.

    python bench/overhead.py [-n 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import _server
import aiohttp

import corelogin
from corelogin.wire import APP_KEY_HEADER, PATHS, check_params

USERNAME = "bench"
SCOPE = "default"
GOAL = 1.05


def summary(label: str, ms: list[float]) -> str:
    p90 = statistics.quantiles(ms, n=10)[8]
    return (
        f"{label:<5} median {statistics.median(ms):7.3f} ms   p90 {p90:7.3f} ms   "
        f"mean {statistics.fmean(ms):7.3f} ms   min {min(ms):7.3f} ms"
    )


def login_body(params: dict[str, Any]) -> bytes:
    """The body the SDK sends for a login: its checked params plus the scope, as JSON bytes."""
    body = check_params("login", params)
    body["scope"] = SCOPE
    return json.dumps(body).encode()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One HTTP/1.1 request as it arrived on the socket: request line, headers and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + await reader.readexactly(length)


async def capture_both(key: str, params: dict[str, Any], data: bytes) -> tuple[bytes, bytes]:
    """Send one login each way to a listener that records the bytes; returns (sdk, raw)."""
    captured: list[bytes] = []
    answer = json.dumps({"error": "captured", "status": int(corelogin.Status.SERVER_ERROR)})

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            captured.append(await read_request(reader))
            writer.write(
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(answer)}\r\nConnection: close\r\n\r\n".encode()
                + answer.encode()
            )
            await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    headers = {APP_KEY_HEADER: key, "Content-Type": "application/json"}
    try:
        async with corelogin.init(url, key, SCOPE, retries=0) as probe:
            evt = await probe.users.login(params)
            assert evt.status == corelogin.Status.SERVER_ERROR, evt
        async with (
            aiohttp.ClientSession() as session,
            session.post(url + PATHS["login"], data=data, headers=headers) as response,
        ):
            await response.read()
    finally:
        server.close()
        await server.wait_closed()
    assert len(captured) == 2, captured
    return captured[0], captured[1]


async def measure(url: str, key: str, rounds: int, warmup: int) -> tuple[list[float], list[float]]:
    params = {"username": USERNAME, "password": _server.PASSWORD}
    data = login_body(params)
    headers = {APP_KEY_HEADER: key, "Content-Type": "application/json"}
    login_url = url + PATHS["login"]

    sdk_request, raw_request = await capture_both(key, params, data)
    assert sdk_request.endswith(b"\r\n\r\n" + data), (sdk_request, data)
    assert sdk_request == raw_request, (sdk_request, raw_request)

    async with corelogin.init(url, key, SCOPE) as core, aiohttp.ClientSession() as session:
        created = await core.users.create(params)
        assert created.error is None, created

        async def sdk() -> None:
            evt = await core.users.login(params)
            assert evt.error is None, evt

        async def raw() -> None:
            async with session.post(login_url, data=data, headers=headers) as response:
                payload = await response.json()
            assert "result" in payload, payload

        async def timed(call: Callable[[], Awaitable[None]], into: list[float]) -> None:
            start = time.perf_counter()
            await call()
            into.append((time.perf_counter() - start) * 1000)

        sdk_ms: list[float] = []
        raw_ms: list[float] = []
        pair = [(sdk, sdk_ms), (raw, raw_ms)]
        for i in range(warmup + rounds):
            for call, into in pair if i % 2 else reversed(pair):  # alternate who goes first
                await timed(call, into)
            if i + 1 == warmup:
                sdk_ms.clear()
                raw_ms.clear()
    return sdk_ms, raw_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="logins each way (default 2000)")
    parser.add_argument("--warmup", type=int, default=100, help="rounds not counted")
    args = parser.parse_args()
    if args.n < 2:
        parser.error("-n must be at least 2")
    key = secrets.token_urlsafe(16)
    with _server.server_process(key) as server:
        url = server.url
        sdk_ms, raw_ms = asyncio.run(measure(url, key, args.n, args.warmup))
    ratio = statistics.median(sdk_ms) / statistics.median(raw_ms)
    ratio90 = statistics.quantiles(sdk_ms, n=10)[8] / statistics.quantiles(raw_ms, n=10)[8]
    extra_us = (statistics.median(sdk_ms) - statistics.median(raw_ms)) * 1000
    print(f"logins each way   {args.n} (after {args.warmup} warm-up rounds), sequential")
    print("request bytes     identical (one of each captured and compared before measuring)")
    print(summary("sdk", sdk_ms))
    print(summary("raw", raw_ms))
    print(f"sdk/raw median    {ratio:.3f}  ({extra_us:+.0f} us a call)   goal <= {GOAL:.2f}")
    print(f"sdk/raw p90       {ratio90:.3f}")
    met = round(ratio, 3) <= GOAL  # judged at the precision printed above
    print("verdict           " + ("meets the goal" if met else "MISSES the goal"))


if __name__ == "__main__":
    main()
