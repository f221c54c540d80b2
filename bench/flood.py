"""The latency of a legitimate login while a flood of wrong-password logins runs.

The server runs in a subprocess with real argon2id hashes (no ``--insecure-fast-hash``), once
with its default hash queue (16 waiting hashes per hashing thread, then 829 at once with
``Retry-After``) and once with an effectively unbounded one (``--hash-queue 100000``), to show
what the bound buys. In each run, against a fresh server:

1. baseline: a legitimate user logs in ``-n`` times in a row through the SDK (asyncio mode,
   ``await core.users.login(...)``) with nobody else on the server;
2. flood: ``-c`` concurrent clients each loop wrong-password logins for a second user as fast
   as they can (raw aiohttp posts of the very bytes the SDK sends: ``wire.check_params`` plus
   the scope, as JSON, with ``X-Corelogin-Key`` and ``Content-Type: application/json``), never
   waiting on 829, as an attacker would not. Once it has run ``--ramp`` seconds, the
   legitimate user logs in ``-n`` times in a row again, or for ``--duration`` seconds if that
   ends first. After an 829 it waits the server's Retry-After (1 s; the SDK does not retry
   829 by itself) before its next attempt, as a well-behaved client would.

Printed per run: the baseline's median and p90; under the flood, the legitimate user's
successful logins (median, p90, max, and median / baseline median), its 829s, and the time to a
session when every 829 is retried after Retry-After; the flood's rate and outcomes (603 or 829);
the CPU the server and the flood used. The flood runs in its own process, so that its busy loop
does not slow the legitimate client's event loop; all three processes share this machine's
cores, which the argon2 threads need too.

    python bench/flood.py [-n 40] [-c 64] [--duration 40] [--ramp 1] [--only default|unbounded]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import secrets
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

import _server
import aiohttp
from _server import Server

import corelogin
from corelogin.server.passwords import RETRY_AFTER_SECONDS, usable_cores
from corelogin.wire import APP_KEY_HEADER, PATHS, Status, check_params

SCOPE = "default"
LEGIT = "legit"
TARGET = "victim"
WRONG_PASSWORD = "not the password at all"
UNBOUNDED_QUEUE = 100_000
DEFAULT_PER_ADDRESS = 256  # the server's max_connections_per_address
BUSY = int(Status.TOO_MANY_REQUESTS)
WRONG = int(Status.INVALID_CREDENTIALS)


# -- the server ------------------------------------------------------------------------------


@contextmanager
def server_process(key: str, hash_queue: int | None, connections: int) -> Iterator[Server]:
    """``corelogin serve`` with real argon2id and the given hash queue (None: its default)."""
    # What is measured is the hash queue's load shedding, not the limits per address.
    settings = dict(_server.UNLIMITED)
    if hash_queue is not None:
        settings["HASH_QUEUE"] = str(hash_queue)
    if connections > DEFAULT_PER_ADDRESS:  # every client here has the same address
        settings["MAX_CONNECTIONS_PER_ADDRESS"] = str(connections)
    with _server.server_process(key, insecure_fast_hash=False, settings=settings) as server:
        yield server


def cpu_seconds(pid: int) -> float | None:
    """A process's user + system CPU time, from /proc (None where there is no /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the flood, in its own process ------------------------------------------------------------


def login_body(params: dict[str, Any]) -> bytes:
    """The body the SDK sends for a login: its checked params plus the scope, as JSON bytes."""
    body = check_params("login", params)
    body["scope"] = SCOPE
    return json.dumps(body).encode()


async def flood(
    url: str, key: str, clients: int, ramp: float, ready: MpEvent, stop: MpEvent
) -> dict[str, Any]:
    data = login_body({"username": TARGET, "password": WRONG_PASSWORD})
    headers = {APP_KEY_HEADER: key, "Content-Type": "application/json"}
    login_url = url + PATHS["login"]
    outcomes: Counter[str] = Counter()
    retry_after: Counter[str] = Counter()

    async def client(session: aiohttp.ClientSession) -> None:
        while True:
            try:
                async with session.post(login_url, data=data, headers=headers) as response:
                    payload = await response.json(content_type=None)
                    if "Retry-After" in response.headers:
                        retry_after[response.headers["Retry-After"]] += 1
                outcomes[str(payload.get("status", "success"))] += 1
            except (aiohttp.ClientError, OSError, ValueError) as exc:
                outcomes[type(exc).__name__] += 1

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        start, cpu = time.perf_counter(), time.process_time()
        tasks = [asyncio.create_task(client(session)) for _ in range(clients)]
        await asyncio.sleep(ramp)
        ready.set()
        await asyncio.get_running_loop().run_in_executor(None, stop.wait)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        counted = dict(outcomes)  # what completed before the stop
        for task in tasks:
            task.cancel()
        for task in tasks:
            with suppress(asyncio.CancelledError):
                await task
    return {"outcomes": counted, "elapsed": elapsed, "cpu": cpu, "retry_after": dict(retry_after)}


def flood_main(
    url: str, key: str, clients: int, ramp: float, ready: MpEvent, stop: MpEvent, out: Any
) -> None:
    out.put(asyncio.run(flood(url, key, clients, ramp, ready, stop)))


# -- the legitimate user ------------------------------------------------------------------------


@dataclass
class Legit:
    ok_ms: list[float] = field(default_factory=list)  # successful logins, one attempt each
    busy_ms: list[float] = field(default_factory=list)  # attempts answered 829
    other: Counter[str] = field(default_factory=Counter)
    to_session_ms: list[float] = field(default_factory=list)  # first attempt to success
    unfinished_ms: float | None = None  # a streak of 829s cut off by the end
    elapsed: float = 0.0

    @property
    def attempts(self) -> int:
        return len(self.ok_ms) + len(self.busy_ms) + self.other.total()


async def legit_logins(core: corelogin.Core, n: int, duration: float, retry_wait: float) -> Legit:
    """``n`` logins in a row (or ``duration`` seconds); after an 829, wait ``retry_wait``."""
    params = {"username": LEGIT, "password": _server.PASSWORD}
    legit = Legit()
    start = time.perf_counter()
    streak: float | None = None  # when the current run of attempts towards a session began
    for _ in range(n):
        if time.perf_counter() - start > duration:
            break
        began = time.perf_counter()
        streak = began if streak is None else streak
        evt = await core.users.login(params)
        ms = (time.perf_counter() - began) * 1000
        if evt.error is None:
            legit.ok_ms.append(ms)
            legit.to_session_ms.append((time.perf_counter() - streak) * 1000)
            streak = None
        elif evt.status == BUSY:
            legit.busy_ms.append(ms)
            await asyncio.sleep(retry_wait)
        else:
            legit.other[f"{evt.status} {evt.error}"] += 1
    if streak is not None:
        legit.unfinished_ms = (time.perf_counter() - streak) * 1000
    legit.elapsed = time.perf_counter() - start
    return legit


# -- one run ------------------------------------------------------------------------------------


@dataclass
class Run:
    name: str
    label: str
    baseline: list[float]
    legit: Legit
    flood: dict[str, Any]
    server_cpu: float | None


async def measure(
    url: str, key: str, args: argparse.Namespace, start_flood: Callable[[], None]
) -> tuple[list[float], Legit]:
    """Both phases for the legitimate user; the flood starts in between, in its own process."""
    async with corelogin.init(url, key, SCOPE) as core:
        for username in (LEGIT, TARGET):
            created = await core.users.create({"username": username, "password": _server.PASSWORD})
            assert created.error is None, created
        for _ in range(args.warmup):  # the connection, the server's first queries
            evt = await core.users.login({"username": LEGIT, "password": _server.PASSWORD})
            assert evt.error is None, evt
        alone = await legit_logins(core, args.n, float("inf"), RETRY_AFTER_SECONDS)
        assert not alone.busy_ms, alone
        assert not alone.other, alone

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, start_flood)
        under = await legit_logins(core, args.n, args.duration, RETRY_AFTER_SECONDS)
    return alone.ok_ms, under


def one_run(name: str, label: str, hash_queue: int | None, args: argparse.Namespace) -> Run:
    key = secrets.token_urlsafe(16)
    ctx = multiprocessing.get_context("spawn")
    ready, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    with server_process(key, hash_queue, args.c + 8) as server:
        proc = ctx.Process(
            target=flood_main, args=(server.url, key, args.c, args.ramp, ready, stop, out)
        )
        cpu_at_flood: list[float | None] = []

        def start_flood() -> None:
            cpu_at_flood.append(cpu_seconds(server.pid))
            proc.start()
            if not ready.wait(60):
                raise RuntimeError("the flood did not start within 60 s")

        try:
            baseline, legit = asyncio.run(measure(server.url, key, args, start_flood))
            server_cpu_end = cpu_seconds(server.pid)
        finally:
            stop.set()
            result = out.get(timeout=60) if proc.pid is not None else {}
            proc.join(30)
    cpu_start = cpu_at_flood[0] if cpu_at_flood else None
    server_cpu = None if None in (cpu_start, server_cpu_end) else server_cpu_end - cpu_start
    return Run(name, label, baseline, legit, result, server_cpu)


# -- printing -----------------------------------------------------------------------------------


def p90(ms: list[float]) -> float:
    return statistics.quantiles(ms, n=10, method="inclusive")[8] if len(ms) >= 2 else ms[0]


def stats(ms: list[float]) -> str:
    if not ms:
        return "none"
    return (
        f"median {statistics.median(ms):8.1f} ms   p90 {p90(ms):8.1f} ms   "
        f"max {max(ms):8.1f} ms   ({len(ms)})"
    )


def times(ms: list[float], base: float) -> str:
    return f"{statistics.median(ms) / base:6.2f}x" if ms else "   n/a"


def ratio(ms: list[float], base: float) -> str:
    return f"{times(ms, base)} baseline median" if ms else "n/a"


def report(run: Run, clients: int) -> None:
    base = statistics.median(run.baseline)
    legit, fl = run.legit, run.flood
    outcomes: dict[str, int] = fl["outcomes"]
    total = sum(outcomes.values())
    others = {k: v for k, v in outcomes.items() if k not in (str(WRONG), str(BUSY))}
    print(f"== hash queue: {run.label} ==")
    print(f"baseline, alone          {stats(run.baseline)}")
    print(
        f"flood                    {clients} clients, {fl['elapsed']:.1f} s, "
        f"{total / fl['elapsed']:.0f} logins/s: {outcomes.get(str(WRONG), 0)} x 603, "
        f"{outcomes.get(str(BUSY), 0)} x 829"
        + "".join(f", {v} x {k}" for k, v in sorted(others.items()))
    )
    print(
        f"legit under the flood    {legit.attempts} logins in {legit.elapsed:.1f} s: "
        f"{len(legit.ok_ms)} success, {len(legit.busy_ms)} x 829"
        + "".join(f", {v} x {k}" for k, v in legit.other.items())
    )
    print(f"  success                {stats(legit.ok_ms)}")
    print(f"  success / baseline     {ratio(legit.ok_ms, base)}")
    print(f"  829 answers            {stats(legit.busy_ms)}")
    print(f"  time to a session      {stats(legit.to_session_ms)}")
    print(f"    (829 retried)        {ratio(legit.to_session_ms, base)}", end="")
    if legit.unfinished_ms is not None:
        print(f"; one still without a session after {legit.unfinished_ms / 1000:.1f} s", end="")
    print()
    server_cpu = "n/a" if run.server_cpu is None else f"{run.server_cpu:.1f} s"
    print(f"CPU under the flood      server {server_cpu}, flood client {fl['cpu']:.1f} s")
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=40, help="legitimate logins a phase (default 40)")
    parser.add_argument("-c", type=int, default=64, help="flooding clients (default 64)")
    parser.add_argument(
        "--duration",
        type=float,
        default=40,
        help="at most this many seconds of legitimate logins under the flood (default 40)",
    )
    parser.add_argument(
        "--ramp", type=float, default=1.0, help="flood seconds before measuring (default 1)"
    )
    parser.add_argument("--warmup", type=int, default=2, help="logins not counted (default 2)")
    parser.add_argument("--only", choices=["default", "unbounded"], help="one run instead of both")
    args = parser.parse_args()
    if args.n < 2 or args.c < 1:
        parser.error("-n must be at least 2 and -c at least 1")

    threads = usable_cores()
    plan = [
        ("default", f"server default (16 per hashing thread: {16 * threads})", None),
        ("unbounded", f"effectively unbounded (--hash-queue {UNBOUNDED_QUEUE})", UNBOUNDED_QUEUE),
    ]
    print(
        f"argon2id, real parameters; {threads} hashing threads (the cores the server may use); "
        f"{os.cpu_count()} cores on this machine, shared by the server, the flood and the "
        "legitimate client"
    )
    print(
        f"legitimate logins {args.n} a phase (at most {args.duration:g} s under the flood, "
        f"after {args.ramp:g} s of flood), sequential, SDK asyncio mode; "
        f"829 retried after {RETRY_AFTER_SECONDS} s"
    )
    print()
    runs = []
    for name, label, queue in plan:
        if args.only in (None, name):
            runs.append(one_run(name, label, queue, args))
            report(runs[-1], args.c)
    if len(runs) == 2:
        print("== summary: the legitimate user under the flood, medians / its baseline median ==")
        print("hash queue   one successful login   attempts answered 829   time to a session")
        for run in runs:
            base = statistics.median(run.baseline)
            busy = len(run.legit.busy_ms) / max(1, run.legit.attempts)
            print(
                f"{run.name:<12} {times(run.legit.ok_ms, base):>20} {busy:23.0%} "
                f"{times(run.legit.to_session_ms, base):>19}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
