"""Helpers shared by the tests."""

from __future__ import annotations

import gc
import json
import subprocess
import threading
import time
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import pytest

import corelogin
from corelogin.server.config import ServerConfig

APP_KEY = "test-app-key"
PASSWORD = "correct horse battery"
LOGIN = {"username": "Donna", "password": PASSWORD}
UNDECIDABLE: dict[str, Any] = {}  # no username, no password: 804 at once, no network
IO_THREAD = "corelogin-io"


async def make_user(
    core: corelogin.Core, username: str = "Donna", **params: object
) -> corelogin.User:
    """Create a user through the SDK and return it (fails the test on an error event)."""
    event = await core.users.create({"username": username, "password": PASSWORD, **params})
    assert event.error is None, event
    user = event.result
    assert isinstance(user, corelogin.User)
    return user


class Listener:
    """Records every Event it gets and the thread it ran on; safe from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[corelogin.Event] = []
        self.threads: list[int] = []

    def __call__(self, event: corelogin.Event) -> None:
        with self._lock:
            self.events.append(event)
            self.threads.append(threading.get_ident())

    @property
    def statuses(self) -> list[int | None]:
        return [event.status for event in self.events]


def io_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == IO_THREAD and t.is_alive()}


def collect_garbage(caught: list[warnings.WarningMessage]) -> None:
    """gc.collect(), after dropping what recorded warnings hold on to (an unawaited coroutine
    recorded as a warning's source keeps its frame, and so maybe a session, alive)."""
    for _ in range(3):
        for warning in caught:
            warning.source = None
        gc.collect()


def unclosed_messages(
    caught: list[warnings.WarningMessage], caplog: pytest.LogCaptureFixture
) -> list[str]:
    """What the warnings and the 'asyncio' logger said about resources left open."""
    found = [
        f"{w.category.__name__}: {w.message}"
        for w in caught
        if issubclass(w.category, ResourceWarning) or "nclosed" in str(w.message)
    ]
    found += [
        f"log {r.name}: {r.getMessage()}"
        for r in caplog.records
        if "nclosed" in r.getMessage() or "destroyed but it is pending" in r.getMessage()
    ]
    return found


def wait_for_health(url: str, proc: subprocess.Popen[str], timeout: float = 30) -> dict[str, str]:
    """Wait for a ``corelogin serve`` subprocess to answer /health; return what it answered."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited: {proc.communicate()}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as response:
                return dict(json.load(response))
        except OSError:
            time.sleep(0.05)
    raise AssertionError("the server never became healthy")


def server_config_for(db: Path) -> ServerConfig:
    """A server on a free port and the SQLite file ``db``. Tests make bursts of real logins,
    often of one user: load shedding is not what they test (test_server_passwords does that
    with queues of its own), so the hash queue and each account's share are made long enough."""
    return ServerConfig(
        app_key=APP_KEY,
        db=f"sqlite:///{db}",
        port=0,
        hash_queue=1000,
        hash_jobs_per_account=1000,
    )
