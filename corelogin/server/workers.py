"""Several server processes on one port: ``corelogin serve --workers N`` (docs/deploying.md).

One process hashes passwords on every core it may use, but parses HTTP, runs handlers and
talks to the database on one core. N processes, each a whole server with its own event loop,
hashing threads and database pool, bind the same port with SO_REUSEPORT, and the kernel
spreads the new connections among them. They share nothing but the database, so they need
one made for many clients: PostgreSQL. SQLite is refused.

The parent is a plain supervisor, simple and predictable: it reserves the port, starts the
workers (``multiprocessing``'s "spawn": fresh interpreters, no state forked from the parent;
the configuration travels through a pipe, so the app key never shows in the process list),
waits for each to say it listens, then only waits. SIGINT or SIGTERM is passed on to the
workers, and the parent exits once they have stopped (0 when every one stopped cleanly). A
worker that dies on its own makes the parent stop the others and exit 1: a process manager
(systemd, a container's restart policy) restarts the whole, rather than the parent nursing
a half-sized server. A worker whose parent vanishes (SIGKILL) stops too.

Sessions, lockouts and rate limits live in the database, so the workers share them; each
worker has its own connection limits (``max_connections``, ``max_connections_per_address``),
hashing threads and hash queue, and its own ``db_pool_max`` connections to the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
import socket
import sys
import time
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnProcess
from types import FrameType

import attrs

from corelogin.server.config import ServerConfig
from corelogin.server.runner import start_server
from corelogin.server.store import StoreError, is_postgres

__all__ = ["SQLITE_REFUSED", "WorkerError", "check_workers", "reserve_port", "run_workers"]

log = logging.getLogger("corelogin.server")

SQLITE_REFUSED = (
    "--workers needs PostgreSQL (--db postgresql://...): a SQLite database is served by one process"
)
# How long stopping workers get before they are killed.
STOP_SECONDS = 30.0
# The workers' log lines say which worker wrote them.
WORKER_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"

_READY = "ready"


class WorkerError(RuntimeError):
    """A worker could not start (its one-line reason); the others have been stopped."""


def check_workers(config: ServerConfig) -> None:
    """Raise ``ValueError`` (one line) if ``config`` cannot be served by several processes."""
    if config.workers > 1 and not is_postgres(config.db):
        raise ValueError(SQLITE_REFUSED)


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` with SO_REUSEPORT, not listening: it holds the port
    (port 0 picks a free one, read back with ``getsockname``) while the workers bind it too,
    and a port another program holds fails here, before any worker starts. The kernel hands
    connections only to listening sockets, so this one never takes any."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:  # as asyncio binds: IPv6 only
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def run_workers(config: ServerConfig) -> int:
    """Serve ``config`` with ``config.workers`` processes until SIGINT or SIGTERM; call from
    the main thread. Returns the exit status: 0 after a requested stop in which every worker
    stopped cleanly, else 1. Raises ``ValueError`` for a configuration `check_workers`
    refuses, ``OSError`` for a port that cannot be had, `WorkerError` when a worker cannot
    start (a database it cannot reach, say)."""
    check_workers(config)
    with reserve_port(config.host, config.port) as reserved:
        host, port = reserved.getsockname()[:2]
        url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
        workers = _Workers(attrs.evolve(config, workers=1, port=port), config.workers)
        return workers.run(url)


class _Workers:
    """The parent's side: the worker processes, and whether a stop was asked for."""

    def __init__(self, config: ServerConfig, count: int) -> None:
        self._config = config
        self._count = count
        self._context = multiprocessing.get_context("spawn")
        self._processes: list[SpawnProcess] = []
        # Kept open until the workers have stopped: one still starting may yet write to it.
        self._readers: list[Connection] = []
        self._signalled: set[int | None] = set()  # pids already sent SIGTERM: once is enough
        self._stopping = False

    def run(self, url: str) -> int:
        handlers = {sig: signal.signal(sig, self._on_signal) for sig in _STOP_SIGNALS}
        try:
            failure = self._start()
            if failure is not None:
                self._stop()
                raise WorkerError(failure)
            if not self._stopping:
                log.info(
                    "corelogin server listening on %s with %d workers (pids %s)",
                    url,
                    self._count,
                    ", ".join(str(process.pid) for process in self._processes),
                )
                self._supervise()
            return self._stop()
        finally:
            self._stop()  # a no-op once every worker has exited
            for sig, handler in handlers.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        """SIGINT or SIGTERM: pass it on; `run` returns when the workers have stopped."""
        if not self._stopping:
            log.info("stopping %d workers (%s)", self._count, signal.Signals(signum).name)
        self._stopping = True
        self._terminate()

    def _start(self) -> str | None:
        """Start the workers and wait until each listens: None then (or when a stop was asked
        for meanwhile), else the first failure's reason."""
        level = logging.getLogger().getEffectiveLevel()
        for number in range(1, self._count + 1):
            if self._stopping:
                break
            reader, writer = self._context.Pipe(duplex=False)
            process = self._context.Process(
                target=_worker,
                args=(self._config, writer, level),
                name=f"corelogin-worker-{number}",
            )
            process.start()
            writer.close()  # the worker holds the other end: its exit is the reader's EOF
            self._processes.append(process)
            self._readers.append(reader)
        pending = list(self._readers)
        while pending and not self._stopping:
            for answered in wait(pending):
                assert isinstance(answered, Connection)
                pending.remove(answered)
                try:
                    said = answered.recv()
                except EOFError:
                    said = "a worker exited while starting (see its messages above)"
                if said != _READY and not self._stopping:
                    return str(said)
        return None

    def _supervise(self) -> None:
        """Wait until a worker exits: after a requested stop, or on its own (then say so and
        stop the others)."""
        ended = wait([process.sentinel for process in self._processes])
        if self._stopping:
            return
        process = next(process for process in self._processes if process.sentinel in ended)
        process.join(STOP_SECONDS)  # its sentinel closes a moment before it can be reaped
        log.error(
            "worker %s %s: stopping the others; the server exits with status 1",
            process.pid,
            _describe(process.exitcode),
        )

    def _terminate(self) -> None:
        for process in self._processes:
            if process.exitcode is None and process.pid not in self._signalled:
                self._signalled.add(process.pid)
                process.terminate()

    def _stop(self) -> int:
        """Stop every worker (SIGTERM, then SIGKILL after `STOP_SECONDS`); return 0 if a stop
        was asked for and every worker stopped cleanly, else 1."""
        self._terminate()
        deadline = time.monotonic() + STOP_SECONDS
        for process in self._processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.exitcode is None:
                log.error("worker %s did not stop within %g s: killed", process.pid, STOP_SECONDS)
                process.kill()
                process.join()
        for reader in self._readers:
            reader.close()
        self._readers.clear()
        unclean = [process for process in self._processes if process.exitcode != 0]
        stopped, self._processes = self._processes, []
        if not (stopped and self._stopping):  # a failure, which has been told already
            return 1
        if unclean:
            for process in unclean:
                log.warning("worker %s %s while stopping", process.pid, _describe(process.exitcode))
            return 1
        log.info("corelogin server stopped (%d workers)", len(stopped))
        return 0


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _describe(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"was killed by {signal.Signals(-exitcode).name}"
    return f"exited with status {exitcode}"


# -- the worker's side ------------------------------------------------------------------------


def _worker(config: ServerConfig, ready: Connection, log_level: int) -> None:
    """A worker process: the whole server on the shared port until SIGINT, SIGTERM or the
    parent's death. Says `_READY` through ``ready`` once it listens, or why it cannot (a
    start-up problem is the parent's to report, in one line; the worker exits 2)."""
    signal.signal(signal.SIGTERM, _exit_quietly)  # until the event loop takes the signals
    logging.basicConfig(level=log_level, format=WORKER_LOG_FORMAT)
    with contextlib.suppress(KeyboardInterrupt):  # SIGINT before the loop took it: a stop
        sys.exit(asyncio.run(_serve(config, ready)))


def _exit_quietly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


async def _serve(config: ServerConfig, ready: Connection) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    parent = multiprocessing.parent_process()
    if parent is not None:  # readable once the parent has exited, however it died
        sentinel = parent.sentinel

        def orphaned() -> None:
            loop.remove_reader(sentinel)
            log.warning("the parent process is gone: stopping")
            stop.set()

        loop.add_reader(sentinel, orphaned)
    try:
        try:
            server = await start_server(config, reuse_port=True)
        except (StoreError, OSError, ValueError) as exc:  # unusable database, port taken...
            _tell(ready, str(exc))
            return 2
        async with server:
            _tell(ready, _READY)
            await stop.wait()
            _ignore_stop_signals(loop)
        return 0
    finally:
        _ignore_stop_signals(loop)


def _tell(ready: Connection, message: str) -> None:
    """Tell the parent ``message``, unless it no longer listens (it is stopping, or gone)."""
    with contextlib.suppress(OSError):
        ready.send(message)


def _ignore_stop_signals(loop: asyncio.AbstractEventLoop) -> None:
    """From now on the worker is on its way out: a second signal (Ctrl-C reaches the workers,
    and the parent passes it on too) must not kill it half-way, nor reach the loop while it
    closes (asyncio closes the loop's wakeup pipe before it lets go of the signals). The
    parent's SIGKILL after `STOP_SECONDS` remains."""
    for sig in _STOP_SIGNALS:
        loop.remove_signal_handler(sig)
        signal.signal(sig, signal.SIG_IGN)
