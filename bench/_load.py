"""The load of bench/server.py: a cheap raw HTTP/1.1 client on keep-alive connections, the
CPU, threads and memory of server processes from /proc, and a PostgreSQL schema per run."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from corelogin.wire import APP_KEY_HEADER, PATHS

PG_DSN_VARIABLE = "CORELOGIN_TEST_PG_DSN"
SCOPE = "default"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- the client: raw HTTP/1.1 on keep-alive connections ----------------------------------------


class Connection(asyncio.Protocol):
    """One keep-alive connection, one request at a time: about the cheapest client asyncio
    allows, so that as much of the CPU as possible is left to the server."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._lost: BaseException | None = None

    @classmethod
    async def open(cls, url: str) -> Connection:
        parts = urlsplit(url)
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(cls, parts.hostname or "", parts.port or 80)
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(buffer[:end])
        at = head.lower().find(b"\r\ncontent-length:")
        if at < 0:
            self._fail(ConnectionError(f"an answer without Content-Length: {head[:200]!r}"))
            return
        line_end = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : end if line_end < 0 else line_end])
        total = end + 4 + length
        if len(buffer) < total:
            return
        body = bytes(buffer[end + 4 : total])
        del buffer[:total]
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((int(head[9:12]), body))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionError("the server closed the connection"))

    def _fail(self, exc: BaseException) -> None:
        self._lost = exc
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if self._transport is not None:
            self._transport.close()

    async def request(self, data: bytes) -> tuple[int, bytes]:
        """Send one request (its bytes, whole) and return the answer's status and body."""
        if self._lost is not None or self._transport is None:
            raise ConnectionError(f"the connection is gone: {self._lost}")
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(data)
        return await self._waiter

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


@dataclass(frozen=True)
class Target:
    """What a request needs to know of one server."""

    url: str
    key: str

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc

    def post(self, call: str, body: dict[str, Any], token: str | None = None) -> bytes:
        """A call of ``core.users`` as the SDK sends it: JSON, the app key, the scope."""
        data = json.dumps({**body, "scope": SCOPE}).encode()
        auth = "" if token is None else f"Authorization: Bearer {token}\r\n"
        head = (
            f"POST {PATHS[call]} HTTP/1.1\r\nHost: {self.host}\r\n{APP_KEY_HEADER}: {self.key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n{auth}\r\n"
        )
        return head.encode() + data

    def health(self) -> bytes:
        return f"GET {PATHS['health']} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode()


def answered(status: int, body: bytes) -> bool:
    return status == 200 and body.startswith(b'{"result"')


# -- driving the load and watching the server's processes ---------------------------------------


def stat_cpu(stat: Path) -> float:
    """User and system CPU seconds from a /proc stat file (a process's: all its threads)."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime: fields 14, 15


def cpu_seconds(pids: Sequence[int]) -> float:
    """CPU time of processes so far, all their threads."""
    return sum(stat_cpu(Path(f"/proc/{pid}/stat")) for pid in pids)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of a process but its main one (the event loop), by id."""
    times = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        if int(task.name) != pid:
            with suppress(OSError, ValueError):  # the thread ended meanwhile
                times[int(task.name)] = stat_cpu(task / "stat")
    return times


def busy_threads(before: dict[int, float], after: dict[int, float], seconds: float) -> int:
    """Threads (the loop's aside) that ran at least a quarter of ``seconds``: the hashing
    threads, during a run of logins with real argon2 that kept them all busy."""
    return sum(1 for tid, cpu in after.items() if cpu - before.get(tid, 0.0) >= seconds / 4)


@dataclass
class Load:
    """What one stretch of load did, and the CPU it cost on each side."""

    answers: int = 0
    seconds: float = 0.0
    server_cpu: float = 0.0  # seconds, all the server processes together
    client_cpu: float = 0.0  # seconds, this process
    failures: Counter[str] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return self.answers / self.seconds

    def add(self, other: Load) -> None:
        self.answers += other.answers
        self.seconds += other.seconds
        self.server_cpu += other.server_cpu
        self.client_cpu += other.client_cpu
        self.failures.update(other.failures)

    def check(self, status: int, body: bytes) -> None:
        if answered(status, body):
            self.answers += 1
        else:
            self.failures[f"{status} {body[:120].decode(errors='replace')}"] += 1


Worker = Callable[[Load], Awaitable[None]]


async def drive(pids: Sequence[int], workers: Sequence[Worker]) -> Load:
    """Run the workers together; wall time and both sides' CPU time around them."""
    load = Load()
    server_before, client_before = cpu_seconds(pids), time.process_time()
    start = time.perf_counter()
    await asyncio.gather(*(worker(load) for worker in workers))
    load.seconds = time.perf_counter() - start
    load.server_cpu = cpu_seconds(pids) - server_before
    load.client_cpu = time.process_time() - client_before
    return load


def each_once(connections: Sequence[Connection], requests: Sequence[bytes]) -> list[Worker]:
    """Workers, one per connection, that send every request once between them."""
    pending = iter(requests)

    def worker(connection: Connection) -> Worker:
        async def run(load: Load) -> None:
            for data in pending:
                load.check(*await connection.request(data))

        return run

    return [worker(connection) for connection in connections]


def until(
    connections: Sequence[Connection], requests: Sequence[bytes], seconds: float
) -> list[Worker]:
    """Workers, one per connection, each sending its own request again and again for
    ``seconds`` (the one in flight at the end is waited for and counted)."""
    deadline = time.perf_counter() + seconds

    def worker(connection: Connection, data: bytes) -> Worker:
        async def run(load: Load) -> None:
            while time.perf_counter() < deadline:
                load.check(*await connection.request(data))

        return run

    return [worker(c, data) for c, data in zip(connections, requests, strict=True)]


async def call_all(connections: Sequence[Connection], requests: Sequence[bytes]) -> list[Any]:
    """Set-up calls, every one of which must succeed: their results, in order."""
    results: list[Any] = [None] * len(requests)
    pending = iter(enumerate(requests))

    async def run(connection: Connection) -> None:
        for index, data in pending:
            status, body = await connection.request(data)
            if not answered(status, body):
                raise RuntimeError(f"a set-up call failed: {status} {body[:200]!r}")
            results[index] = json.loads(body)

    await asyncio.gather(*(run(connection) for connection in connections))
    return results


@asynccontextmanager
async def connected(urls: Sequence[str]) -> AsyncIterator[list[Connection]]:
    connections = [await Connection.open(url) for url in urls]
    try:
        yield connections
    finally:
        for connection in connections:
            connection.close()


# -- databases -----------------------------------------------------------------------------------


def with_search_path(dsn: str, schema: str) -> str:
    return f"{dsn}{'&' if '?' in dsn else '?'}search_path={schema}"


@asynccontextmanager
async def database(kind: str, dsn: str | None) -> AsyncIterator[str | None]:
    """The database URL of one part: None (a throwaway SQLite file of _server's) or a
    PostgreSQL schema of its own, dropped afterwards whatever happened."""
    if kind == "sqlite":
        yield None
        return
    import asyncpg

    assert dsn is not None
    schema = f"bench_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        yield with_search_path(dsn, schema)
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


async def postgres_missing(dsn: str | None) -> str | None:
    """Why the PostgreSQL parts cannot run, or None when they can."""
    if not dsn:
        return f"no DSN (--pg-dsn or {PG_DSN_VARIABLE})"
    from corelogin.server.store import open_store

    try:
        open_store(dsn)  # builds the store object only; it connects in open()
        import asyncpg

        admin = await asyncpg.connect(dsn)
        await admin.close()
    except ImportError as exc:
        return f"asyncpg is not installed ({exc})"
    except (ValueError, OSError) as exc:
        return str(exc)
    except Exception as exc:  # asyncpg's own errors: authentication, unknown database
        return f"cannot connect: {exc}"
    return None
