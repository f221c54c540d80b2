"""Network faults for the delivery tests: a raw TCP server on 127.0.0.1 that misbehaves.

`FaultServer` runs its own asyncio loop on a daemon thread (so synchronous, frame-mode tests can
use it). It reads each HTTP request in full and then, depending on the request, drops the
connection, never answers, or forwards the request to a real corelogin server and relays the
answer. `kill` makes it die like a crashed server: open connections are aborted and new ones
refused. Nothing here imitates the corelogin server: answers come from the real one or not at all.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import urlsplit

import attrs

__all__ = ["Behaviour", "FaultServer", "Received", "free_port"]

Behaviour = Literal["forward", "drop", "hang"]


@attrs.frozen
class Received:
    """One request the fault server read in full."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]


def free_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class FaultServer:
    """``with FaultServer("drop") as fault: init(fault.url, ...)``.

    ``behaviour`` is one behaviour for every request, or a function of the request body (a
    dict) that picks one. ``forward`` needs ``upstream``, the URL of a real server.
    """

    def __init__(
        self,
        behaviour: Behaviour | Callable[[dict[str, Any]], Behaviour],
        upstream: str | None = None,
    ) -> None:
        self._choose = behaviour if callable(behaviour) else (lambda _body: behaviour)
        self._upstream = urlsplit(upstream) if upstream is not None else None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fault-server", daemon=True
        )
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._changed = threading.Condition()
        self.connections = 0
        self.received: list[Received] = []
        self.url = ""

    # -- control (any thread) --------------------------------------------------------------

    def start(self) -> FaultServer:
        self._thread.start()
        self._server = self._run(
            asyncio.start_server(self._handle, "127.0.0.1", 0, reuse_address=True)
        )
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def wait_received(self, predicate: Callable[[list[Received]], bool], timeout: float) -> bool:
        """Block until ``predicate(received)`` holds; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(list(self.received)), timeout)

    def kill(self) -> None:
        """Die like a crashed server: stop listening and abort every open connection."""
        if self._thread.is_alive():
            self._run(self._kill())

    def stop(self) -> None:
        if self._thread.is_alive():
            self.kill()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    # -- on the server's loop --------------------------------------------------------------

    async def _kill(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        with self._changed:
            self.connections += 1
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                head, body = request
                received = _parse(head, body)
                with self._changed:
                    self.received.append(received)
                    self._changed.notify_all()
                behaviour = self._choose(received.body)
                if behaviour == "drop":
                    return
                if behaviour == "hang":
                    await reader.read()  # never answer; end when the client gives up
                    return
                writer.write(await self._forward(head, body))
                await writer.drain()
                return  # the answer says "Connection: close"
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._handlers.discard(task)
            self._writers.discard(writer)
            writer.close()

    async def _forward(self, head: bytes, body: bytes) -> bytes:
        """Send the request to the real server with ``Connection: close``; return its answer."""
        assert self._upstream is not None, "forward needs an upstream server"
        assert self._upstream.hostname is not None
        assert self._upstream.port is not None
        lines = [
            line
            for line in head.split(b"\r\n")
            if line and not line.lower().startswith(b"connection:")
        ]
        lines.append(b"Connection: close")
        reader, writer = await asyncio.open_connection(self._upstream.hostname, self._upstream.port)
        try:
            writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
            await writer.drain()
            return await reader.read()  # until the server closes: the whole answer
        finally:
            writer.close()


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None  # the client went away between requests
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    body = await reader.readexactly(length)
    return head.rstrip(b"\r\n"), body


def _parse(head: bytes, body: bytes) -> Received:
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    try:
        parsed = json.loads(body) if body else {}
    except ValueError:
        parsed = {}
    return Received(
        path=request_line.split(" ")[1],
        headers=headers,
        body=parsed if isinstance(parsed, dict) else {},
    )
