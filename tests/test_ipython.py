"""Terminal IPython: plain cells run outside any loop (frame mode), top-level await works."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import corelogin
from corelogin.server import ServerThread
from tests.helpers import APP_KEY, LOGIN

pytest.importorskip("IPython", reason="IPython is not installed (corelogin[jupyter])")

CELLS = """\
import asyncio, threading, corelogin
core = corelogin.init({url!r}, {key!r})
print("deliver:", core.deliver, "loop in a plain cell:", asyncio._get_running_loop())
heard = []
evt = await core.users.login({login!r}, lambda e: heard.append(threading.current_thread().name))
print("awaited:", evt.result.username, "listener had run:", heard)
print("result():", core.users.login({login!r}).result(10).result.user_id == evt.result.user_id)
core.close()
exit
"""


def test_top_level_await_in_terminal_ipython_runs_the_listener_first(
    server_thread: ServerThread, tmp_path: Path
) -> None:
    with corelogin.init(server_thread.url, APP_KEY) as core:
        assert core.users.create(LOGIN).result(10).error is None
    typed = CELLS.format(url=server_thread.url, key=APP_KEY, login=LOGIN)
    done = subprocess.run(
        [sys.executable, "-m", "IPython", "--simple-prompt", "--no-banner", "--colors=NoColor"],
        input=typed,
        env={**os.environ, "IPYTHONDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "Traceback" not in out + done.stderr
    assert "deliver: frame loop in a plain cell: None" in out
    assert "awaited: Donna listener had run: ['MainThread']" in out
    assert "result(): True" in out
