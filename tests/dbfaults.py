"""A TCP link between the server and PostgreSQL that a test can cut, as a database that goes
down and comes back looks to the server: open connections are aborted, new ones refused, and
later accepted again. Bytes pass through untouched; the database answering is the real one."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from urllib.parse import urlsplit, urlunsplit

__all__ = ["DatabaseLink"]


class DatabaseLink:
    """A proxy on 127.0.0.1 to the PostgreSQL of ``dsn``, in the running loop:
    ``url`` is ``dsn`` through it."""

    def __init__(self, dsn: str) -> None:
        parts = urlsplit(dsn)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._dsn = parts
        self._server: asyncio.Server | None = None
        self._port = 0
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        netloc = self._dsn.netloc.rsplit("@", 1)
        user = f"{netloc[0]}@" if len(netloc) == 2 else ""
        return urlunsplit(self._dsn._replace(netloc=f"{user}127.0.0.1:{self._port}"))

    async def start(self) -> DatabaseLink:
        """Accept connections (again, on the same port, after `cut`)."""
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._port))
        self._port = sock.getsockname()[1]
        self._server = await asyncio.start_server(self._relay, sock=sock)
        return self

    async def cut(self) -> None:
        """Abort every open connection and refuse new ones, until `start`."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )
        self._writers -= {writer, up_writer}

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(Exception):
                writer.transport.abort()
