"""``corelogin serve --workers N``: real processes sharing one port. SQLite is refused in one
line; on PostgreSQL two workers listen on the port (seen in /proc, without any endpoint of the
product's), the kernel deals connections to both, both serve one database, SIGTERM stops them
all cleanly, and a worker's death stops the rest with a failing status."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from corelogin.wire import APP_KEY_HEADER, PATHS
from tests.helpers import APP_KEY, PASSWORD, wait_for_health
from tests.netfaults import free_port

pytestmark = pytest.mark.timeout(60)

SERVE = [sys.executable, "-m", "corelogin.cli", "serve"]
REFUSED = (
    "corelogin serve: --workers needs PostgreSQL (--db postgresql://...): a SQLite database "
    "is served by one process"
)
LISTEN, ESTABLISHED = "0A", "01"  # TCP states as /proc/net/tcp writes them
USER = {"username": "Donna", "password": PASSWORD}


# -- SQLite: refused --------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_workers_with_sqlite_are_refused_in_one_line(tmp_path: Path, how: str) -> None:
    db = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    args = ["--workers", "2"] if how == "flag" else []
    env = {**os.environ, "CORELOGIN_KEY": APP_KEY, "CORELOGIN_DB": db}
    if how == "environment":
        env["CORELOGIN_WORKERS"] = "2"
    done = subprocess.run(
        [*SERVE, "--port", str(free_port()), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == REFUSED
    assert not (tmp_path / "x.sqlite3").exists()  # refused before anything was opened


def test_zero_workers_are_refused_in_one_line() -> None:
    done = subprocess.run(
        [*SERVE, "--port", str(free_port()), "--key", "k", "--workers", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "workers" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_worker_that_cannot_start_is_one_line_and_status_2() -> None:
    """Nothing listens on port 1: every worker fails to open its pool; the parent says why
    once, stops the rest and exits 2, like a single server that cannot start."""
    done = subprocess.run(
        [*SERVE, "--workers", "2", "--port", str(free_port()), "--log-level", "WARNING"],
        env={
            **os.environ,
            "CORELOGIN_KEY": APP_KEY,
            "CORELOGIN_DB": "postgresql://nobody@127.0.0.1:1/nothing",
            "CORELOGIN_DB_TIMEOUT_SECONDS": "2",
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("corelogin serve: "), done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


class Served:
    """A ``corelogin serve --workers N`` process: the parent, its log, the port."""

    def __init__(self, proc: subprocess.Popen[str], log: Path) -> None:
        self.proc = proc
        self.log = log
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stderr(self) -> str:
        return self.log.read_text()

    def wait_listening(self, workers: int, timeout: float = 20) -> set[int]:
        """Wait for the parent's line "listening on URL with N workers"; learn the port from
        it; return the worker pids, once each holds a socket listening on the port."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited: {self.stderr()}")
            found = re.search(rf"listening on (\S+):(\d+) with {workers} workers", self.stderr())
            if found:
                self.port = int(found[2])
                wait_for_health(self.url, self.proc)
                pids = listening_pids(self.port)
                if len(pids) == workers:
                    return pids
            time.sleep(0.05)
        raise AssertionError(f"{workers} workers never listened: {self.stderr()}")


@contextmanager
def serve_workers(db: str, log: Path, *args: str) -> Iterator[Served]:
    """``corelogin serve`` with ``args`` on ``db``, in a process group of its own (as a shell
    starts a command); the key comes from the environment. Killed at the end if the test left
    it running."""
    env = {
        **os.environ,
        "CORELOGIN_KEY": APP_KEY,
        "CORELOGIN_DB": db,
        "CORELOGIN_INSECURE_FAST_HASH": "true",  # these tests are about processes
    }
    with log.open("w") as err:
        proc = subprocess.Popen(
            [*SERVE, *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
            process_group=0,
        )
    try:
        yield Served(proc, log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


# -- what /proc says about sockets and processes -----------------------------------------------


def tcp_sockets(state: str) -> list[tuple[int, int, int]]:
    """(local port, remote port, inode) of every TCP socket in ``state``, IPv4 and IPv6."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if fields[3] == state:
                    local, remote = (int(f.rsplit(":", 1)[1], 16) for f in fields[1:3])
                    found.append((local, remote, int(fields[9])))
    return found


def socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets ``pid`` holds open."""
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:  # gone, or not ours to look at
        return set()
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # the name in () may hold anything


def listening_pids(port: int) -> set[int]:
    """The processes that hold a socket listening on ``port``."""
    inodes = {inode for local, _, inode in tcp_sockets(LISTEN) if local == port}
    return {pid for pid in all_pids() if socket_inodes(pid) & inodes}


def serving_pid(client: http.client.HTTPConnection, port: int, pids: set[int]) -> int:
    """Which of ``pids`` holds the server's end of ``client``'s connection."""
    assert client.sock is not None
    mine = client.sock.getsockname()[1]
    inodes = {i for local, remote, i in tcp_sockets(ESTABLISHED) if (local, remote) == (port, mine)}
    holders = [pid for pid in pids if socket_inodes(pid) & inodes]
    assert len(holders) == 1, holders
    return holders[0]


def gone(pid: int) -> bool:
    """Whether ``pid`` has exited (and been reaped, or is a zombie)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def wait_gone(pids: set[int], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(gone(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


def post(client: http.client.HTTPConnection, name: str, body: dict[str, str]) -> dict[str, Any]:
    """One call of the wire contract on ``client``'s connection (kept open): the envelope."""
    client.request(
        "POST",
        PATHS[name],
        body=json.dumps({"scope": "default", **body}),
        headers={APP_KEY_HEADER: APP_KEY, "Content-Type": "application/json"},
    )
    response = client.getresponse()
    envelope: dict[str, Any] = json.loads(response.read())
    assert response.status == 200, envelope
    return envelope


def health(client: http.client.HTTPConnection, *, close: bool) -> int:
    client.request("GET", PATHS["health"], headers={"Connection": "close"} if close else {})
    response = client.getresponse()
    assert json.loads(response.read()) == {"result": "ok"}
    return response.status


# -- PostgreSQL: the tests --------------------------------------------------------------------


def test_two_workers_share_the_port_and_the_database(pg_url: str, tmp_path: Path) -> None:
    port = free_port()
    with serve_workers(pg_url, tmp_path / "stderr", "--workers", "2", "--port", str(port)) as s:
        workers = s.wait_listening(2)

        # Two processes listen on the port, both the parent's children; the parent itself
        # holds the port without listening; no command line carries the key.
        assert s.port == port
        assert {parent_of(pid) for pid in workers} == {s.proc.pid}
        assert s.proc.pid not in workers
        for pid in {s.proc.pid, *workers}:
            assert APP_KEY not in Path(f"/proc/{pid}/cmdline").read_text()

        # Fresh connections, one request each: all answered.
        for _ in range(40):
            client = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            assert health(client, close=True) == 200
            client.close()

        # Connections held open: the kernel deals them to both workers.
        with ExitStack() as stack:
            clients = []
            for _ in range(40):
                client = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                stack.callback(client.close)
                assert health(client, close=False) == 200
                clients.append(client)
            served_by = {client: serving_pid(client, port, workers) for client in clients}
            assert set(served_by.values()) == workers

            # One database: a user created through one worker logs in through the other.
            first, second = sorted(workers)
            on_first = next(c for c, pid in served_by.items() if pid == first)
            on_second = next(c for c, pid in served_by.items() if pid == second)
            created = post(on_first, "create", USER)
            login = post(on_second, "login", USER)
            assert login["result"]["user_id"] == created["result"]["user_id"]
            assert serving_pid(on_first, port, workers) == first  # the same connections still
            assert serving_pid(on_second, port, workers) == second

        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(15) == 0  # 0: every worker stopped cleanly
        assert wait_gone(workers)
        err = s.stderr()
        assert f"listening on http://127.0.0.1:{port} with 2 workers" in err
        assert "stopped (2 workers)" in err
        assert "Traceback" not in err
        assert APP_KEY not in err


def test_a_worker_killed_stops_the_others_and_the_parent_fails(pg_url: str, tmp_path: Path) -> None:
    """Also: port 0 makes the parent pick one port, and every worker listens on it."""
    with serve_workers(pg_url, tmp_path / "stderr", "--workers", "2", "--port", "0") as s:
        workers = s.wait_listening(2)
        assert s.port != 0
        victim, survivor = sorted(workers)

        os.kill(victim, signal.SIGKILL)

        assert s.proc.wait(15) == 1
        assert wait_gone({survivor})
        err = s.stderr()
        assert f"worker {victim} was killed by SIGKILL: stopping the others" in err
        assert "Traceback" not in err
        assert listening_pids(s.port) == set()


def test_ctrl_c_stops_every_worker_cleanly(pg_url: str, tmp_path: Path) -> None:
    """Ctrl-C in a terminal sends SIGINT to the whole group: the workers get it directly and
    again from the parent (as SIGTERM); a second signal must not kill a worker half-way."""
    with serve_workers(pg_url, tmp_path / "stderr", "--workers", "2", "--port", "0") as s:
        workers = s.wait_listening(2)

        os.killpg(s.proc.pid, signal.SIGINT)

        assert s.proc.wait(15) == 0
        assert wait_gone(workers)
        err = s.stderr()
        assert "stopped (2 workers)" in err
        assert "Traceback" not in err
        assert "Exception ignored" not in err
