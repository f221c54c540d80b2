"""samples/qt_login.py runs end to end as its own process, on Qt's offscreen platform."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import corelogin
from corelogin.server import ServerThread
from tests.helpers import APP_KEY, PASSWORD
from tests.test_samples import run_sample, succeeded, user_ids

pytest.importorskip("PySide6", reason="the Qt sample needs PySide6 (the corelogin[qt] extra)")

OFFSCREEN = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}


def run_qt(*args: str, env: dict[str, str] = OFFSCREEN) -> subprocess.CompletedProcess[str]:
    return run_sample("qt_login.py", "--auto", *args, env=env)


def test_qt_login_signs_up_fails_then_logs_in_on_the_gui_thread(tmp_path: Path) -> None:
    screenshot = tmp_path / "qt_login.png"
    out = succeeded(run_qt(env={**OFFSCREEN, "CORELOGIN_SCREENSHOT": str(screenshot)}))
    # (nothing on stderr: no Qt warning either)
    lines = out.splitlines()
    assert re.fullmatch(r"create: evt\.result\.username=donna-\w{8}, on the GUI thread", lines[0])
    assert lines[2] == (
        "login: evt.status=603 evt.error='invalid username/email or password', on the GUI thread"
    )
    assert re.fullmatch(r"login: evt\.result\.user_id=\S+ \(\d+ ms\), on the GUI thread", lines[4])
    assert len(user_ids(out)) == 1
    # After each answer the autopilot reads the label the listener set, on the GUI thread.
    name = re.findall(r"donna-[0-9a-f]{8}", lines[0])[0]
    assert lines[1::2] == [
        f"status label: Welcome, {name}. Now log in.",
        "status label: Login failed (603): invalid username/email or password",
        f"status label: Logged in as {name}.",
    ]
    assert len(lines) == 6
    # The window, rendered before it closed.
    assert screenshot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert screenshot.stat().st_size > 1000


def test_qt_login_uses_the_server_given_on_the_command_line(server_thread: ServerThread) -> None:
    out = succeeded(run_qt("--server", server_thread.url, "--key", APP_KEY))
    names = re.findall(r"evt\.result\.username=(donna-[0-9a-f]{8})", out)
    assert len(names) == 1
    # The sample's user lives on this server: creating it again is refused.
    with corelogin.init(server_thread.url, APP_KEY) as core:
        evt = core.users.create({"username": names[0], "password": PASSWORD}).result(10)
    assert evt.status == corelogin.Status.USER_EXISTS, evt


def test_qt_login_quits_by_itself_when_it_runs_out_of_time() -> None:
    done = run_qt("--timeout", "0.01")
    assert done.returncode == 1
    assert "Logged in" not in done.stdout
    assert user_ids(done.stdout) == []
    # The call in flight when the window closed got its 817, on the GUI thread.
    assert re.search(r"evt\.status=817 evt\.error='cancelled: .*', on the GUI thread", done.stdout)
    assert done.stderr == ""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="displays are a Linux matter")
def test_qt_login_without_a_display_says_so_instead_of_aborting() -> None:
    unset = ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    done = run_qt(env={name: value for name, value in os.environ.items() if name not in unset})
    assert done.returncode == 2
    assert done.stderr == (
        "cannot open a window: no display (QT_QPA_PLATFORM=offscreen runs without one)\n"
    )
