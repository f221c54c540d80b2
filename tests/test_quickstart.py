"""The quick start runs end to end and prints the events the Lua way."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quickstart_creates_logs_in_and_shows_a_failure() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "samples" / "quickstart.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    user_ids = re.findall(r"evt\.result\.user_id = ([0-9a-f-]{36})", out)
    assert len(user_ids) == 3  # created, then logged in by username and by email
    assert len(set(user_ids)) == 1
    assert out.count("evt.result.validated = true") == 2
    assert "evt.status = 603" in out
    assert "evt.status = 804" in out
    assert "logged in as Donna" in out
    assert "Traceback" not in done.stderr
