"""samples/trio_login.py: awaited calls and run_listeners in a real trio program."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

import corelogin
from corelogin.server import ServerThread
from tests.helpers import APP_KEY
from tests.test_samples import ROOT, SAMPLES, UUID, run_sample, succeeded, user_ids

pytest.importorskip("trio", reason="trio is not installed (pip install corelogin[trio])")


def check_run(out: str) -> str:
    """The checks every run shares; returns the user's name."""
    assert "deliver='frame' (trio has no asyncio loop)" in out
    created = re.search(r"create: evt\.result\.username=(\S+)", out)
    assert created is not None
    assert "login: evt.status=603" in out
    awaited = user_ids(out, "awaited: evt.result.user_id=")
    heard = re.findall(f"listener: evt.result.user_id=({UUID}) \\(on MainThread\\)", out)
    assert len(awaited) == 1
    assert heard == awaited  # the listener-only call, delivered on trio's thread
    ticks = re.search(r"heartbeat: (\d+) ticks while the calls were in flight", out)
    assert ticks is not None
    assert int(ticks[1]) > 0  # trio's loop ran while the calls were out
    return created[1]


def test_trio_sample_logs_in_without_blocking_the_loop() -> None:
    name = check_run(succeeded(run_sample("trio_login.py", "--auto")))
    assert name.startswith("donna-")


def typed_in(server: ServerThread, keyboard: str) -> subprocess.CompletedProcess[str]:
    """Run the sample against ``server`` with ``keyboard`` as what the user types."""
    return subprocess.run(
        [sys.executable, str(SAMPLES / "trio_login.py"), "--server", server.url, "--key", APP_KEY],
        input=keyboard,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_trio_sample_reads_its_answers_from_the_keyboard(server_thread: ServerThread) -> None:
    done = typed_in(server_thread, "zed-typed\ncorrect horse battery staple\n")
    assert done.returncode == 0, done.stdout + done.stderr
    assert check_run(done.stdout) == "zed-typed"
    # The user lives on the server given on the command line.
    with corelogin.init(server_thread.url, APP_KEY) as core:
        evt = core.users.login(
            {"username": "zed-typed", "password": "correct horse battery staple"}
        ).result(10)
    assert evt.error is None, evt
    assert evt.result.user_id in done.stdout


def test_trio_sample_exits_1_when_sign_up_is_refused(server_thread: ServerThread) -> None:
    done = typed_in(server_thread, "zed\nshort\n")
    assert done.returncode == 1
    assert "create: evt.status=" in done.stdout
    assert "Traceback" not in done.stderr
