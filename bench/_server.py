"""The reference server in its own process, so that a benchmark measures the client alone."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from corelogin.wire import PATHS

PASSWORD = "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode}):\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url + PATHS["health"], timeout=1) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)
    raise RuntimeError(f"the server did not answer {PATHS['health']} within {timeout} s")


# Every benchmark client calls from 127.0.0.1, thousands of times a minute: the per-address rate
# limit and the lockout, which would stop them, are off.
UNLIMITED: Final[Mapping[str, str]] = {"RATE_LIMIT_PER_MINUTE": "0", "LOCKOUT_THRESHOLD": "0"}

# The benchmarks measure the client: the server queues every hash and never sheds load, even
# when one bench user logs in many times at once.
CLIENT_BENCH_SETTINGS: Final[Mapping[str, str]] = {
    **UNLIMITED,
    "HASH_QUEUE": "100000",
    "HASH_JOBS_PER_ACCOUNT": "100000",
}


@dataclass(frozen=True)
class Server:
    url: str
    pid: int


@contextmanager
def server_process(
    key: str,
    *,
    insecure_fast_hash: bool = True,
    settings: Mapping[str, str] = CLIENT_BENCH_SETTINGS,
    db: str | None = None,
) -> Iterator[Server]:
    """Run ``corelogin serve`` on a free port and ``db`` (default: a throwaway SQLite file).

    ``settings`` are ServerConfig fields as ``CORELOGIN_<FIELD>`` variables (without the prefix).
    The key and the database URL travel in the environment too, never on the command line.
    """
    with tempfile.TemporaryDirectory() as tmp:
        port, log = free_port(), Path(tmp) / "server.log"
        command = [
            sys.executable,
            "-m",
            "corelogin.cli",
            "serve",
            "--port",
            str(port),
            "--log-level",
            "ERROR",
        ]
        if insecure_fast_hash:
            command.append("--insecure-fast-hash")
        env = {
            **os.environ,
            **{f"CORELOGIN_{name}": value for name, value in settings.items()},
            "CORELOGIN_KEY": key,
            "CORELOGIN_DB": db or f"sqlite:///{Path(tmp) / 'bench.sqlite3'}",
        }
        with log.open("wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, process, log, timeout=30)
            yield Server(url, process.pid)
        finally:
            process.terminate()
            process.wait(10)
