"""The quick start runs end to end and prints the events the Lua way."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quickstart_confirms_logs_in_updates_and_shows_failures() -> None:
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
    # created, logged in before and after confirming, by email, updated, read
    assert len(user_ids) == 6
    assert len(set(user_ids)) == 1
    assert "evt.result.confirmation = pending" in out
    assert out.count("evt.result.validated = false") == 1
    assert re.search(r"confirmation link: http://127\.0\.0\.1:\d+/confirm\?code=[\w-]{43}\n", out)
    assert "followed it: HTTP 200" in out
    assert out.count("evt.result.validated = true") == 2
    assert "evt.result.extra = {'lv': 2}" in out
    assert "evt.status = 603" in out
    assert "evt.status = 804" in out
    assert "logged in as Donna" in out
    assert "Traceback" not in done.stderr
