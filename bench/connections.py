"""How the server holds up under a connection flood: /health latency while attackers open
slow connections (slowloris) from several addresses, against /health alone, in the same run.

The server runs in a subprocess with its default limits (256 connections per address, a request
must arrive whole within 30 s). Attackers connect from 127.0.0.2, 127.0.0.3, ... (all of
127.0.0.0/8 is loopback on Linux), each opening more connections than its limit allows and
sending half a request line on each; /health is asked from 127.0.0.1 meanwhile.

    python bench/connections.py [--per-address 400] [--addresses 4] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import time
from urllib.parse import urlsplit

import _server
import aiohttp

from corelogin.wire import PATHS


async def health_latencies(url: str, count: int, pause: float) -> list[float]:
    """``count`` requests to /health, each on a new connection, ``pause`` s apart (ms)."""
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        async with (
            aiohttp.ClientSession() as session,
            session.get(url + PATHS["health"]) as response,
        ):
            assert response.status == 200, response.status
        latencies.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(pause)
    return latencies


async def attack(
    host: str, port: int, addresses: int, per_address: int
) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """Open ``per_address`` slow connections from each of ``addresses`` loopback addresses."""
    held = []
    for n in range(addresses):
        source = f"127.0.0.{n + 2}"
        for _ in range(per_address):
            reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
            writer.write(b"POST /v1/users/login HTTP/1.1\r\n")  # and never the rest
            held.append((reader, writer))
    return held


def summary(label: str, ms: list[float]) -> str:
    p90 = statistics.quantiles(ms, n=10)[8]
    median = statistics.median(ms)
    return f"{label:<14} median {median:7.2f} ms   p90 {p90:7.2f} ms   max {max(ms):7.2f} ms"


async def measure(url: str, args: argparse.Namespace) -> None:
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    alone = await health_latencies(url, 40, 0.05)
    started = time.monotonic()
    held = await attack(parts.hostname, parts.port, args.addresses, args.per_address)
    opened = time.monotonic() - started
    await asyncio.sleep(0.5)  # the refused ones are closed by now
    under = await health_latencies(url, max(10, int(args.seconds / 0.25)), 0.25)
    still_open = sum(not reader.at_eof() and reader.exception() is None for reader, _ in held)
    for _, writer in held:
        writer.close()
    attempted = args.addresses * args.per_address
    print(
        f"attack            {attempted} slow connections from {args.addresses} addresses "
        f"({args.per_address} each) opened in {opened:.1f} s"
    )
    print(f"held by the server {still_open}   closed at once {attempted - still_open}")
    print(summary("/health alone", alone))
    print(summary("under attack", under))
    ratio = statistics.median(under) / statistics.median(alone)
    print(f"under/alone       median {ratio:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-address", type=int, default=400, help="connections per address")
    parser.add_argument("--addresses", type=int, default=4, help="attacking addresses")
    parser.add_argument("--seconds", type=float, default=10, help="how long /health is asked")
    args = parser.parse_args()
    key = secrets.token_urlsafe(16)
    with _server.server_process(key) as server:
        url = server.url
        asyncio.run(measure(url, args))


if __name__ == "__main__":
    main()
