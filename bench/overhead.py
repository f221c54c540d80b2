"""What the SDK costs over bare aiohttp: the same login, sent both ways, alternately.

The server runs in a subprocess with cheap hashes (``--insecure-fast-hash``), so that the time
measured is mostly the client's. Each round sends one login through the SDK (asyncio mode,
``await core.users.login(...)``) and one through ``aiohttp.ClientSession.post`` with the same
URL, headers and JSON body, swapping which goes first every round. Goal: SDK/raw <= 1.10.

    python bench/overhead.py [-n 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable

import _server
import aiohttp

import corelogin
from corelogin.wire import APP_KEY_HEADER, PATHS

USERNAME = "bench"
GOAL = 1.10


def summary(label: str, ms: list[float]) -> str:
    p90 = statistics.quantiles(ms, n=10)[8]
    return (
        f"{label:<5} median {statistics.median(ms):7.3f} ms   p90 {p90:7.3f} ms   "
        f"mean {statistics.fmean(ms):7.3f} ms   min {min(ms):7.3f} ms"
    )


async def measure(url: str, key: str, rounds: int, warmup: int) -> tuple[list[float], list[float]]:
    params = {"username": USERNAME, "password": _server.PASSWORD}
    body = {**params, "scope": "default"}
    headers = {APP_KEY_HEADER: key}
    login_url = url + PATHS["login"]
    async with corelogin.init(url, key) as core, aiohttp.ClientSession() as session:
        created = await core.users.create(params)
        assert created.error is None, created

        async def sdk() -> None:
            evt = await core.users.login(params)
            assert evt.error is None, evt

        async def raw() -> None:
            async with session.post(login_url, json=body, headers=headers) as response:
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
    with _server.server_process(key) as url:
        sdk_ms, raw_ms = asyncio.run(measure(url, key, args.n, args.warmup))
    ratio = statistics.median(sdk_ms) / statistics.median(raw_ms)
    ratio90 = statistics.quantiles(sdk_ms, n=10)[8] / statistics.quantiles(raw_ms, n=10)[8]
    extra_us = (statistics.median(sdk_ms) - statistics.median(raw_ms)) * 1000
    print(f"logins each way   {args.n} (after {args.warmup} warm-up rounds), sequential")
    print(summary("sdk", sdk_ms))
    print(summary("raw", raw_ms))
    print(f"sdk/raw median    {ratio:.3f}  ({extra_us:+.0f} us a call)   goal <= {GOAL:.2f}")
    print(f"sdk/raw p90       {ratio90:.3f}")
    met = round(ratio, 3) <= GOAL  # judged at the precision printed above
    print("verdict           " + ("meets the goal" if met else "MISSES the goal"))


if __name__ == "__main__":
    main()
