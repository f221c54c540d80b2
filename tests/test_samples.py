"""Every sample runs end to end as its own process and prints the events the Lua way."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import corelogin
from corelogin.server import ServerThread
from tests.helpers import APP_KEY, PASSWORD

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# Where an X server announces a display: fixed paths, not temporary files we create.
X_LOCK = "/tmp/.X{}-lock"  # noqa: S108
X_SOCKET = "/tmp/.X11-unix/X{}"  # noqa: S108
CLI_SAMPLES = [
    "asyncio_service.py",
    "blocking_script.py",
    "frame_loop_game.py",
    "signal_subscriber.py",
]


def run_sample(
    name: str, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        # Unclosed sockets, sessions or files would show on stderr as ResourceWarnings.
        [sys.executable, "-W", "default::ResourceWarning", str(SAMPLES / name), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def succeeded(done: subprocess.CompletedProcess[str]) -> str:
    """The output of a run that exited 0 and wrote nothing to stderr (no warnings either)."""
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    return done.stdout


def user_ids(out: str, prefix: str = "evt.result.user_id=") -> list[str]:
    found = re.findall(re.escape(prefix) + f"({UUID})", out)
    for text in found:
        uuid.UUID(text)
    return found


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_asyncio_service_awaits_and_runs_async_listeners(loop: str) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop", reason="uvloop is not installed (corelogin[uvloop])")
    out = succeeded(run_sample("asyncio_service.py", *(["--uvloop"] if loop == "uvloop" else [])))
    assert f"deliver='asyncio'> on {loop}" in out
    # The same user id from the async listener and from `await request`.
    listened = user_ids(out, "listener: logged in, evt.result.user_id=")
    awaited = user_ids(out, "awaited: evt.error=None evt.result.user_id=")
    assert len(listened) == len(awaited) == 1
    assert listened == awaited
    assert "listener: login failed, evt.status=603" in out
    assert "awaited: evt.status=603" in out
    assert f"user_id='{awaited[0]}'" in out  # core.users.logged_in_user


def test_blocking_script_gets_results_and_runs_the_listener_first() -> None:
    out = succeeded(run_sample("blocking_script.py"))
    lines = out.splitlines()
    assert "deliver='frame'" in lines[0]
    assert len(user_ids(out)) == 1
    listener = lines.index("listener: evt.name=login evt.error=None evt.status=None")
    assert lines[listener + 1].startswith("logged in: evt.result.user_id=")
    assert "as a table: evt['result']['validated']=True" in lines
    assert "wrong password: evt.status=603" in out
    assert "no password: evt.status=804" in out


def test_frame_loop_game_draws_frames_until_both_logins_are_in() -> None:
    out = succeeded(run_sample("frame_loop_game.py", "--frames", "600"))
    assert len(user_ids(out)) == 1
    assert "login failed: evt.status=603" in out
    # text mode turns each "\r" into a line break: one line per frame drawn.
    frames = [int(n) for n in re.findall(r"(?m)^frame +(\d+) ", out)]
    assert frames == list(range(1, len(frames) + 1))  # one status line per frame, in order
    stopped = re.search(r"stopped after (\d+) frames, ([\d.]+) s", out)
    assert stopped is not None
    count, seconds = int(stopped[1]), float(stopped[2])
    assert count == len(frames)
    assert 1 < count < 600
    assert seconds >= (count - 1) / 60 * 0.9  # paced by time.sleep, not spinning
    assert "player: donna-" in out  # the listener's state change was drawn


def test_frame_loop_game_gives_up_after_its_frame_budget() -> None:
    done = run_sample("frame_loop_game.py", "--frames", "1")
    assert done.returncode == 1
    assert "gave up: logins not done within 1 frames" in done.stdout
    # close() delivers the call still in flight on the frame thread: cancelled, not lost.
    assert "create failed: evt.status=817" in done.stdout


def test_signal_subscriber_receives_each_signal_on_the_main_thread() -> None:
    out = succeeded(run_sample("signal_subscriber.py"))
    assert out.count("signal user_created: evt.result.username=donna-") == 1
    assert re.search(f"signal login: evt.result.user_id={UUID} \\(on MainThread\\)", out)
    assert out.count("signal login_failed:") == 2
    assert "signal login_failed: evt.status=603" in out
    assert "signal login_failed: evt.status=804" in out


@pytest.mark.parametrize("sample", CLI_SAMPLES)
def test_sample_uses_the_server_given_on_the_command_line(
    sample: str, server_thread: ServerThread
) -> None:
    out = succeeded(run_sample(sample, "--server", server_thread.url, "--key", APP_KEY))
    names = re.findall(r"evt\.result\.username=(donna-[0-9a-f]{8})", out)
    assert len(names) == 1
    # The sample's user lives on this server: creating it again is refused.
    with corelogin.init(server_thread.url, APP_KEY) as core:
        evt = core.users.create({"username": names[0], "password": PASSWORD}).result(10)
    assert evt.status == corelogin.Status.USER_EXISTS, evt


@pytest.mark.parametrize("sample", CLI_SAMPLES)
def test_sample_refuses_a_server_without_a_key(sample: str) -> None:
    done = run_sample(sample, "--server", "http://127.0.0.1:9")
    assert done.returncode == 2
    assert "--key is required with --server" in done.stderr


# -- the Tk sample, on the real display or on an Xvfb started here --------------------------


def _start_xvfb(xvfb: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start Xvfb on the first display number that is free, trying the next on a clash."""
    for number in range(91, 200):
        socket = Path(X_SOCKET.format(number))
        if socket.exists() or Path(X_LOCK.format(number)).exists():
            continue
        process = subprocess.Popen(
            [xvfb, f":{number}", "-screen", "0", "640x480x24", "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and process.poll() is None:
            if socket.exists():
                return process, f":{number}"
            time.sleep(0.05)
        process.kill()
        process.wait()
    pytest.skip("Xvfb did not start on any display from :91 to :199")


def _can_open_window(display: str) -> str | None:
    """None if Tk can open a window on ``display``, else why not."""
    probe = subprocess.run(
        [sys.executable, "-c", "import tkinter; tkinter.Tk().destroy()"],
        env={**os.environ, "DISPLAY": display},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return None if probe.returncode == 0 else probe.stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    pytest.importorskip("tkinter", reason="this Python has no tkinter")
    if os.environ.get("DISPLAY"):
        problem = _can_open_window(os.environ["DISPLAY"])
        if problem:
            pytest.skip(f"DISPLAY={os.environ['DISPLAY']} is set but unusable: {problem}")
        yield os.environ["DISPLAY"]
        return
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("the Tk sample needs a display: DISPLAY is unset and Xvfb is not installed")
    process, name = _start_xvfb(xvfb)
    try:
        yield name
    finally:
        process.terminate()
        process.wait(10)


def run_tk(display: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_sample("tk_login.py", "--auto", *args, env={**os.environ, "DISPLAY": display})


def test_tk_login_signs_up_fails_then_logs_in(display: str) -> None:
    out = succeeded(run_tk(display))
    assert re.search(r"create: evt\.result\.username=donna-[0-9a-f]{8}", out)
    assert "login: evt.status=603" in out
    assert len(user_ids(out)) == 1
    # The listeners ran on the Tk thread and updated the label the user sees.
    assert "status label: Login failed (603)" in out
    assert "status label: Logged in as donna-" in out


def test_tk_login_quits_by_itself_when_it_runs_out_of_time(display: str) -> None:
    done = run_tk(display, "--timeout", "0.01")
    assert done.returncode == 1
    assert "Logged in" not in done.stdout


def test_stay_logged_in_restores_on_the_next_start_without_a_password(tmp_path: Path) -> None:
    store = tmp_path / "sessions.json"
    out = succeeded(run_sample("stay_logged_in.py", "--store", str(store)))

    lines = out.splitlines()
    assert lines[0] == "no saved login: logging in with the password, staying logged in"
    assert lines[2] == "saved login found: restoring it (no password)"
    assert lines[1].replace("login:", "restore:") == lines[3]  # the same player, twice
    assert lines[4] == "logged out: True; saved login kept: False"
    assert oct(store.stat().st_mode & 0o777) == "0o600"
    assert '"sessions": {}' in store.read_text()
