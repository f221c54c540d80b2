"""The pygame sample, headless (SDL's dummy video driver): its autopilot posts the pygame events
a person would make, and the listeners run in ``core.process_events()`` on the main thread."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

import corelogin
from corelogin.server import ServerThread
from tests.helpers import APP_KEY
from tests.test_samples import run_sample, succeeded, user_ids

pytest.importorskip("pygame", reason="the sample needs pygame: pip install corelogin[pygame]")

SAMPLE = "pygame_login.py"
SAMPLE_PASSWORD = "correct horse battery staple"  # samples/_server.py's PASSWORD
USERNAME = r"donna-[0-9a-f]{8}"


def run_pygame(*args: str) -> subprocess.CompletedProcess[str]:
    # os.environ now, not at import: it has the session's XDG_DATA_HOME (tests/conftest.py).
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}
    return run_sample(SAMPLE, "--auto", *args, env=env)


def test_pygame_login_signs_up_fails_then_logs_in_from_the_frame_loop() -> None:
    out = succeeded(run_pygame())
    created = re.search(rf"(?m)^create: evt\.result\.username=({USERNAME})$", out)
    assert created is not None, out
    name = created[1]
    assert "login: evt.status=603 evt.error=" in out
    assert len(user_ids(out)) == 1

    # Each answer, in order: the listener's line, the thread it ran on, then the status line
    # the next frame drew from what the listener set.
    lines = out.splitlines()
    main_thread = "listener thread: MainThread (main thread: True)"
    assert lines[0] == f"create: evt.result.username={name}"
    assert lines[1:3] == [main_thread, f"status line: Welcome, {name}. Now log in."]
    assert lines[3].startswith("login: evt.status=603 ")
    assert lines[4] == main_thread
    assert lines[5].startswith("status line: Login failed (603): ")
    assert lines[6].startswith("login: evt.result.user_id=")
    assert lines[7:9] == [main_thread, f"status line: Logged in as {name}."]

    frames = re.fullmatch(r"frames: (\d+), longest process_events\(\): ([\d.]+) ms", lines[9])
    assert frames is not None, lines[9:]
    # A frame for each answer to arrive in, and one after it to show it. (How long
    # process_events() took is printed for people; a loaded machine makes it no test.)
    assert int(frames[1]) >= 4
    float(frames[2])
    assert len(lines) == 10


def test_pygame_login_uses_the_server_given_on_the_command_line(
    server_thread: ServerThread,
) -> None:
    out = succeeded(run_pygame("--server", server_thread.url, "--key", APP_KEY))
    names = re.findall(rf"evt\.result\.username=({USERNAME})", out)
    ids = user_ids(out)
    assert len(names) == len(ids) == 1
    # The sample's user lives on this server: logging in as it here gives the same user.
    with corelogin.init(server_thread.url, APP_KEY) as core:
        evt = core.users.login({"username": names[0], "password": SAMPLE_PASSWORD}).result(10)
    assert evt.error is None, evt
    assert evt.result.user_id == ids[0]


def test_pygame_login_gives_up_when_it_runs_out_of_time() -> None:
    done = run_pygame("--timeout", "0.01")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "gave up: not logged in within 0.01 s" in done.stdout
    assert user_ids(done.stdout) == []
    assert "Logged in" not in done.stdout
    assert re.search(r"(?m)^frames: \d+, ", done.stdout)
    # The sign-up sent in the first frame is still in flight: closing the Core cancels it, and its
    # listener still runs, on the main thread.
    assert "create: evt.status=817 " in done.stdout
    assert "listener thread: MainThread (main thread: True)" in done.stdout
    assert done.stderr == ""


def test_pygame_login_refuses_a_server_without_a_key() -> None:
    done = run_pygame("--server", "http://127.0.0.1:9")
    assert done.returncode == 2
    assert "--key is required with --server" in done.stderr
