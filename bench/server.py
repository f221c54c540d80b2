"""The reference server under load (issue 11): logins/s with real argon2 against the bound the
hash threads allow, authenticated cheap calls against ``/health``, and a server's memory after
many logins. Every figure is printed beside a baseline measured in the same run, and their
ratio, because the machine is noisy.

Each part starts its own ``corelogin serve`` subprocesses (``bench/_server.py``: key and
database in the environment, log level ERROR, the per-address rate limit and the lockout off),
on a throwaway SQLite file or, for PostgreSQL, in a schema of its own (``bench_<random>``,
created with asyncpg, dropped at the end even on failure). The load comes from this process
through a deliberately cheap client: raw HTTP/1.1 on keep-alive connections (asyncio protocols,
request bytes built once), one request at a time per connection, every answer checked
(``200`` and ``{"result"...``).

1. ``logins``: real argon2id. ``--users`` users are created, then ``--hash-logins`` logins,
   the users in turn (no two logins of one user at once: the per-account hash limit never
   bites), ``2 x workers + 2`` in flight. Bound = hash workers / median time of one argon2id
   verify (``--verifies`` of them with argon2-cffi in this process, the server's parameters,
   the server idle). Workers = what the server resolves: ``--hash-workers`` if given, else
   the CPUs its process may use (``os.sched_getaffinity(PID)``); the threads that were busy
   in the server during the run (``/proc/PID/task``) are counted as a check. Goal >= 0.95.
   Also shown: the bound from the server process's CPU count; from the CPU time it really
   got (``/proc/PID/stat``; what the client and the neighbours took is left out) at the CPU
   cost of a verify among ``workers`` running at once; and ``workers`` threads verifying at
   once here, measured.
2. ``calls``: ``users.get`` of one's own user with the session token (``Authorization:
   Bearer``) against ``GET /health`` (the HTTP floor; it pings the store), requests/s, both
   driven the same way (``--connections``, one user and session each) in alternating rounds
   of ``--seconds``. SQLite: one server process; PostgreSQL: one, then two processes on two
   ports (the connections dealt out between them), then one ``corelogin serve --workers 2``
   if it has that flag. Goal >= 0.5. Also shown: the server processes' CPU time per call
   (PostgreSQL's own not counted).
3. ``memory``: a server's VmRSS after ``--warmup`` logins (the baseline), along the way and
   after ``--logins`` in all (each writes a session and a login event), with
   ``insecure_fast_hash`` (real argon2 would take hours). Goal: growth < 5 MiB.

With 2 cores the client competes with the server for CPU, and so does anything else running:
the CPU each side got is printed in the notes. PostgreSQL: the DSN from ``--pg-dsn`` or
``$CORELOGIN_TEST_PG_DSN``; without one, or without a usable store, its parts are skipped with
the reason. Exit status 1 when a goal is missed.

    python bench/server.py [--db sqlite|postgresql|both] [--pg-dsn DSN] [--part logins ...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import _server
import argon2
from _load import (
    PG_DSN_VARIABLE,
    Connection,
    Load,
    Target,
    busy_threads,
    call_all,
    connected,
    database,
    drive,
    each_once,
    postgres_missing,
    rss_mib,
    thread_cpu,
    until,
)

from corelogin.server.passwords import MEMORY_KIB, PARALLELISM, TIME_COST

PARTS = ("logins", "calls", "memory")
HASH_GOAL = 0.95
CALLS_GOAL = 0.5
FLAT_MIB = 5.0


# -- the report ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    figure: str
    measured: str
    baseline: str
    ratio: str
    goal: str
    met: bool | None  # None: shown for information, no goal


@dataclass
class Report:
    lines: list[Line] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def print_report(kind: str, report: Report) -> None:
    header = Line("figure", "measured", "baseline", "ratio", "goal", None)
    rows = [header, *report.lines]
    widths = [
        max(len(getattr(row, name)) for row in rows)
        for name in ("figure", "measured", "baseline", "ratio")
    ]
    print(f"\n== {kind} ==")
    for row in rows:
        verdict = "" if row.met is None else "  ok" if row.met else "  MISSED"
        cells = (row.figure, row.measured, row.baseline, row.ratio)
        text = "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
        print(f"  {text}  {row.goal}{verdict}".rstrip())
    for note in report.notes:
        print(f"  - {note}")


def failures_note(label: str, load: Load) -> list[str]:
    if not load.failures:
        return []
    top = "; ".join(f"{n} x {what}" for what, n in load.failures.most_common(3))
    return [f"{label}: {load.failures.total()} calls FAILED ({top})"]


# -- 1. logins with real argon2 ---------------------------------------------------------------


def server_argon2() -> tuple[argon2.PasswordHasher, str]:
    """argon2-cffi with the server's parameters, and a hash of the bench password."""
    hasher = argon2.PasswordHasher(
        time_cost=TIME_COST, memory_cost=MEMORY_KIB, parallelism=PARALLELISM, type=argon2.Type.ID
    )
    return hasher, hasher.hash(_server.PASSWORD)


def verify_seconds(count: int) -> tuple[list[float], list[float]]:
    """Times of ``count`` argon2id verifications, one after the other, here: wall time, and
    the CPU time of this thread (which a busy neighbour does not inflate)."""
    hasher, stored = server_argon2()
    wall, cpu = [], []
    for _ in range(count):
        start, thread = time.perf_counter(), time.thread_time()
        hasher.verify(stored, _server.PASSWORD)
        wall.append(time.perf_counter() - start)
        cpu.append(time.thread_time() - thread)
    return wall, cpu


def parallel_verifies(threads: int, count: int) -> tuple[float, float]:
    """Verifications per second here with ``threads`` threads verifying at once (``count``
    each), what the hardware gives that many hashing threads now (shared caches, memory
    bandwidth, the neighbours), and the CPU seconds each verification took meanwhile."""
    hasher, stored = server_argon2()
    total = threads * count
    with ThreadPoolExecutor(threads) as pool:
        start, cpu = time.perf_counter(), time.process_time()
        list(pool.map(lambda _: hasher.verify(stored, _server.PASSWORD), range(total)))
        return total / (time.perf_counter() - start), (time.process_time() - cpu) / total


def login_requests(target: Target, names: Sequence[str], count: int) -> list[bytes]:
    """``count`` logins of the users in turn."""
    return [
        target.post("login", {"username": names[i % len(names)], "password": _server.PASSWORD})
        for i in range(count)
    ]


async def create_users(
    connections: Sequence[Connection], target: Target, count: int
) -> tuple[list[str], list[str]]:
    """``count`` new users: their usernames and ids."""
    names = [f"bench{i}" for i in range(count)]
    created = await call_all(
        connections,
        [target.post("create", {"username": n, "password": _server.PASSWORD}) for n in names],
    )
    return names, [answer["result"]["user_id"] for answer in created]


async def part_logins(kind: str, args: argparse.Namespace, dsn: str | None) -> Report:
    report = Report()
    key = secrets.token_urlsafe(16)
    settings = dict(_server.UNLIMITED)
    if args.hash_workers:
        settings["HASH_WORKERS"] = str(args.hash_workers)
    async with database(kind, dsn) as db:
        with _server.server_process(key, insecure_fast_hash=False, settings=settings, db=db) as s:
            target = Target(s.url, key)
            # The server's own resolution: hash_workers, else usable_cores() in its process.
            server_cpus = len(os.sched_getaffinity(s.pid))
            workers = args.hash_workers or server_cpus
            in_flight = 2 * workers + 2
            async with connected([s.url] * in_flight) as connections:
                names, _ = await create_users(connections, target, args.users)
                requests = login_requests(target, names, args.hash_logins)
                await call_all(connections, requests[: 2 * in_flight])  # warm-up
                # The server is idle while argon2 is timed here.
                verifies, verifies_cpu = verify_seconds(args.verifies)
                together, together_cpu = parallel_verifies(workers, max(1, args.verifies // 2))
                before = thread_cpu(s.pid)
                load = await drive([s.pid], each_once(connections, requests))
                busy = busy_threads(before, thread_cpu(s.pid), load.seconds)

    verify, verify_cpu = statistics.median(verifies), statistics.median(verifies_cpu)
    got = load.server_cpu / load.seconds  # cores' worth of CPU time the server had
    ms = f"{verify * 1000:.1f} ms"
    bounds = (
        # The goal's: the hash threads the server really has, each a verify at a time.
        ("logins/s, argon2id", workers / verify, f"{workers} hash workers / {ms}"),
        ("  bound from server CPUs", server_cpus / verify, f"{server_cpus} CPUs (affinity) / {ms}"),
        # Noise-proof: the CPU time the server got (whatever the client and neighbours took),
        # at the CPU cost of a verify among `workers` at once.
        (
            "  bound from CPU it got",
            got / together_cpu,
            f"{got:.2f} cores / {together_cpu * 1000:.1f} ms CPU",
        ),
        ("  bound measured here", together, f"{workers} threads verifying at once"),
    )
    for number, (figure, bound, how) in enumerate(bounds):
        ratio = load.rate / bound
        report.lines.append(
            Line(
                figure,
                f"{load.rate:.1f}/s",
                f"{bound:.1f}/s = {how}",
                f"{ratio:.3f}",
                "" if number else f">= {HASH_GOAL}",
                None if number else ratio >= HASH_GOAL and not load.failures,
            )
        )
    quartiles = statistics.quantiles(verifies, n=4)
    source = "--hash-workers" if args.hash_workers else "the CPUs the server process may use"
    per_login = load.server_cpu / max(load.answers, 1)
    report.notes += [
        f"logins: {load.answers} of {args.hash_logins} in {load.seconds:.1f} s, {args.users} "
        f"users in turn, {in_flight} in flight (2 x {workers} + 2), real argon2id "
        f"(m={MEMORY_KIB} KiB, t={TIME_COST}, p={PARALLELISM})",
        f"argon2id verify here ({len(verifies)}, server idle): median {verify * 1000:.2f} ms "
        f"(quartiles {quartiles[0] * 1000:.2f}-{quartiles[2] * 1000:.2f}), of CPU "
        f"{verify_cpu * 1000:.2f} ms; with {workers} at once {together_cpu * 1000:.2f} ms of "
        "CPU each",
        f"hash workers {workers} ({source}; threads busy in the server during the run: "
        f"{busy}); CPUs this process may use {len(os.sched_getaffinity(0))}, the server "
        f"{server_cpus}",
        f"CPU: server {got:.2f} cores, client {load.client_cpu / load.seconds:.2f} cores, of "
        f"{os.cpu_count()} (what the client or a neighbour takes, the hash threads lack); "
        f"server CPU per login {per_login * 1000:.1f} ms, of which argon2 "
        f"~{together_cpu * 1000:.1f}",
        *failures_note("logins", load),
    ]
    if verify > 1.1 * verify_cpu:
        report.notes.append(
            f"WARNING: the machine was busy: a verify took {verify / verify_cpu:.2f} x its CPU "
            "time; the bounds from wall time are low, every ratio uncertain"
        )
    if got < 0.8 * min(workers, server_cpus):
        report.notes.append(
            f"WARNING: the server got only {got:.2f} cores for {workers} hash workers: the "
            "machine was busy (see the load average), the ratios to the wall-time bounds "
            "understate the server; the bound from the CPU it got is the one to read"
        )
    if busy != workers:
        report.notes.append(f"WARNING: {busy} threads were busy hashing, not {workers}")
    return report


# -- 2. authenticated cheap calls against /health ---------------------------------------------


@dataclass(frozen=True)
class Layout:
    """How the calls' server runs: ``processes`` separate ``corelogin serve`` on a port each
    (the connections dealt out between them), each with ``--workers``."""

    label: str
    processes: int = 1
    workers: int = 1


def serve_has_workers() -> bool:
    """Whether ``corelogin serve`` takes ``--workers`` (several processes on one port)."""
    command = [sys.executable, "-m", "corelogin.cli", "serve", "--help"]
    return "--workers" in subprocess.run(command, capture_output=True, text=True).stdout


def layouts(kind: str) -> list[Layout]:
    if kind == "sqlite":
        return [Layout("1 process")]
    two = [Layout("1 process"), Layout("2 processes, 2 ports", processes=2)]
    return [*two, Layout("serve --workers 2", workers=2)] if serve_has_workers() else two


def spawned_workers(pid: int) -> list[int]:
    """The worker processes of a --workers server: its children that multiprocessing spawned
    (not its resource tracker)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError):
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if parent == pid and b"spawn_main" in (stat.parent / "cmdline").read_bytes():
                found.append(int(stat.parent.name))
    return sorted(found)


def tcp_sockets(port: int, state: str) -> set[str]:
    """Inodes of the local TCP sockets on ``port`` in ``state`` (0A listening, 01
    established), from /proc/net/tcp and tcp6."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with suppress(OSError):
            for row in Path(table).read_text().splitlines()[1:]:
                cells = row.split()
                if int(cells[1].rsplit(":", 1)[1], 16) == port and cells[3] == state:
                    inodes.add(cells[9])
    return inodes


def sockets_of(pid: int, inodes: set[str]) -> int:
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with suppress(OSError):
            count += os.readlink(fd).removeprefix("socket:[").removesuffix("]") in inodes
    return count


def wait_listening(pids: Sequence[int], port: int, timeout: float = 30) -> None:
    """Wait until every one of ``pids`` listens on ``port`` (--workers: /health answered as
    soon as the first did)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listening = tcp_sockets(port, "0A")
        if all(sockets_of(pid, listening) for pid in pids):
            return
        time.sleep(0.1)
    raise RuntimeError(f"the server's {len(pids)} workers did not all listen within {timeout} s")


async def calls_against_health(
    kind: str, args: argparse.Namespace, dsn: str | None, layout: Layout
) -> tuple[Load, Load, list[str]]:
    """(get, health) loads, each summed over the rounds, and notes on the layout."""
    key = secrets.token_urlsafe(16)
    get, health = Load(), Load()
    settings = {**_server.UNLIMITED, "WORKERS": str(layout.workers)}
    notes = []
    async with database(kind, dsn) as db:
        with ExitStack() as stack:
            servers = [
                stack.enter_context(_server.server_process(key, settings=settings, db=db))
                for _ in range(layout.processes)
            ]
            pids = [s.pid for s in servers]
            if layout.workers > 1:
                workers = [child for s in servers for child in spawned_workers(s.pid)]
                for s in servers:
                    wait_listening(spawned_workers(s.pid), urlsplit(s.url).port or 0)
                pids += workers
            urls = [servers[i % len(servers)].url for i in range(args.connections)]
            targets = [Target(url, key) for url in urls]
            async with connected(urls) as connections:
                gets, healths = [], []
                for i, (connection, target) in enumerate(zip(connections, targets, strict=True)):
                    name = f"bench{i}"
                    params = {"username": name, "password": _server.PASSWORD}
                    created, login = await call_all(
                        [connection], [target.post("create", params), target.post("login", params)]
                    )
                    user_id, token = created["result"]["user_id"], login["session"]["token"]
                    gets.append(target.post("get", {"user_id": user_id}, token))
                    healths.append(target.health())
                if layout.workers > 1:  # every connection has been answered: all accepted
                    ports = {urlsplit(url).port or 0 for url in urls}
                    established = set().union(*(tcp_sockets(p, "01") for p in ports))
                    spread = "/".join(str(sockets_of(pid, established)) for pid in workers)
                    notes.append(f"the kernel gave the workers {spread} of the connections")
                for requests in (gets, healths):  # warm-up
                    await drive(pids, until(connections, requests, min(args.seconds, 1.0)))
                for round_ in range(args.rounds):
                    order = [(get, gets), (health, healths)]
                    for total, requests in order if round_ % 2 else order[::-1]:
                        total.add(await drive(pids, until(connections, requests, args.seconds)))
    return get, health, notes


async def part_calls(kind: str, args: argparse.Namespace, dsn: str | None) -> Report:
    report = Report()
    for layout in layouts(kind):
        get, health, notes = await calls_against_health(kind, args, dsn, layout)
        label = layout.label
        ratio = get.rate / health.rate
        get_cpu, health_cpu = get.server_cpu / get.answers, health.server_cpu / health.answers
        report.lines += [
            Line(
                f"get (session) req/s, {label}",
                f"{get.rate:.0f}/s",
                f"/health {health.rate:.0f}/s",
                f"{ratio:.3f}",
                f">= {CALLS_GOAL}",
                ratio >= CALLS_GOAL and not get.failures and not health.failures,
            ),
            Line(
                "  server CPU per call",
                f"{get_cpu * 1e6:.0f} us",
                f"/health {health_cpu * 1e6:.0f} us",
                f"{health_cpu / get_cpu:.3f}",
                "",
                None,
            ),
        ]
        report.notes += [
            f"{label}: {args.connections} connections (one user and session each), "
            f"{args.rounds} rounds of {args.seconds:g} s per kind, alternating; CPU: server "
            f"{get.server_cpu / get.seconds:.2f} / {health.server_cpu / health.seconds:.2f} "
            f"cores, client {get.client_cpu / get.seconds:.2f} / "
            f"{health.client_cpu / health.seconds:.2f} cores (get / health)"
            + ("" if kind == "sqlite" else "; PostgreSQL's own CPU not counted"),
            *notes,
            *failures_note(f"get, {label}", get),
            *failures_note(f"health, {label}", health),
        ]
    if kind != "sqlite" and not serve_has_workers():
        report.notes.append("corelogin serve has no --workers yet: not measured that way")
    return report


# -- 3. a server's memory after many logins ----------------------------------------------------


def checkpoints(warmup: int, total: int, steps: int = 5) -> Iterator[int]:
    """Login counts at which RSS is read: after the warm-up, then ``steps`` times to total."""
    yield warmup
    for step in range(1, steps + 1):
        yield warmup + (total - warmup) * step // steps


async def part_memory(kind: str, args: argparse.Namespace, dsn: str | None) -> Report:
    report = Report()
    key = secrets.token_urlsafe(16)
    in_flight = args.connections
    users = 4 * in_flight  # in turn: never two logins of one user at once
    series: list[tuple[int, float]] = []
    total = Load()
    async with database(kind, dsn) as db:
        with _server.server_process(key, settings=_server.UNLIMITED, db=db) as s:
            target = Target(s.url, key)
            async with connected([s.url] * in_flight) as connections:
                names, _ = await create_users(connections, target, users)
                done = 0
                for point in checkpoints(args.warmup, args.logins):
                    requests = login_requests(target, names, point - done)
                    total.add(await drive([s.pid], each_once(connections, requests)))
                    done = point
                    await asyncio.sleep(0.2)  # let the server finish what follows an answer
                    series.append((done, rss_mib(s.pid)))

    (_, baseline), (_, end) = series[0], series[-1]
    growth = end - baseline
    report.lines.append(
        Line(
            f"server RSS after {args.logins} logins",
            f"{end:.1f} MiB",
            f"{baseline:.1f} MiB after {args.warmup}",
            f"{end / baseline:.3f}",
            f"growth < {FLAT_MIB:g} MiB (grew {growth:+.1f})",
            growth < FLAT_MIB and not total.failures,
        )
    )
    report.notes += [
        "INSECURE FAST HASH for this part (insecure_fast_hash = true): real argon2 would take "
        "hours; each login still writes a session and a login event",
        "RSS along the way: "
        + ", ".join(f"{n // 1000}k {mib:.1f}" for n, mib in series)
        + f" MiB (peak of these {max(mib for _, mib in series):.1f})",
        f"logins: {total.answers} in {total.seconds:.0f} s ({total.rate:.0f}/s), {users} "
        f"users in turn, {in_flight} in flight; server CPU per login "
        f"{total.server_cpu / max(total.answers, 1) * 1000:.2f} ms (a login without argon2), "
        f"client {total.client_cpu / total.seconds:.2f} cores",
        *failures_note("memory logins", total),
    ]
    return report


# -- main ------------------------------------------------------------------------------------


PART_FUNCTIONS: dict[str, Callable[[str, argparse.Namespace, str | None], Awaitable[Report]]] = {
    "logins": part_logins,
    "calls": part_calls,
    "memory": part_memory,
}


async def run(args: argparse.Namespace) -> int:
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    parts = args.part or list(PARTS)
    print(
        f"corelogin server benchmark: {', '.join(parts)}; this process may use "
        f"{len(os.sched_getaffinity(0))} of {os.cpu_count()} CPUs; load average "
        + " ".join(f"{n:.2f}" for n in os.getloadavg())
    )
    missed = False
    for kind in kinds:
        dsn = None
        if kind == "postgresql":
            dsn = args.pg_dsn or os.environ.get(PG_DSN_VARIABLE)
            reason = await postgres_missing(dsn)
            if reason is not None:
                print(f"\n== {kind} ==\n  skipped: {reason}")
                continue
        report = Report()
        for part in parts:
            started = time.perf_counter()
            result = await PART_FUNCTIONS[part](kind, args, dsn)
            report.lines += result.lines
            report.notes += [*result.notes, f"{part} took {time.perf_counter() - started:.0f} s"]
        print_report(kind, report)
        missed |= any(line.met is False for line in report.lines)
    return 1 if missed else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description="The reference server under load (issue 11): logins/s with real argon2, "
        "authenticated calls/s against /health, RSS after many logins."
    )
    parser.add_argument(
        "--db", choices=("sqlite", "postgresql", "both"), default="both", help="(default both)"
    )
    parser.add_argument("--pg-dsn", help=f"PostgreSQL to use (default: ${PG_DSN_VARIABLE})")
    parser.add_argument("--part", action="append", choices=PARTS, help="a part (default: all)")
    parser.add_argument(
        "--connections", type=int, default=16, help="in flight for calls and memory (default 16)"
    )
    group = parser.add_argument_group("logins (real argon2)")
    group.add_argument("--users", type=int, default=300, help="users logging in (default 300)")
    group.add_argument("--hash-logins", type=int, default=600, help="logins timed (default 600)")
    group.add_argument("--verifies", type=int, default=30, help="argon2 verifies timed here (30)")
    group.add_argument("--hash-workers", type=int, help="the server's (default: its own choice)")
    group = parser.add_argument_group("calls")
    group.add_argument("--seconds", type=float, default=3.0, help="per round and kind (3)")
    group.add_argument("--rounds", type=int, default=3, help="rounds of get and health (3)")
    group = parser.add_argument_group("memory (insecure fast hash)")
    group.add_argument("--logins", type=int, default=100_000, help="in all (default 100000)")
    group.add_argument("--warmup", type=int, default=5000, help="before the baseline RSS (5000)")
    args = parser.parse_args()
    if args.logins <= args.warmup:
        parser.error("--logins must be larger than --warmup")
    if min(args.users, args.hash_logins, args.connections, args.rounds) < 1:
        parser.error("counts must be positive")
    if args.verifies < 2:
        parser.error("--verifies must be at least 2")
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
