"""The README's snippets run as shown, against a server started by the README's own command.

Every ```python block of README.md is run, in README order (as a reader would: the first one
creates Donna, later ones log her in), each in a fresh interpreter, against the reference server
started from the README's ``corelogin serve`` line as written, except for its port: a free one,
put into the snippets' URL too. A block that cannot run alone must be preceded by
``<!-- not run: why -->`` and named in ``NOT_RUN`` below with that reason.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import wait_for_health
from tests.netfaults import free_port

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
URL = "http://127.0.0.1:10001"  # what the snippets use; the serve command must listen there
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.DOTALL | re.MULTILINE)
NOT_RUN_MARK = re.compile(r"<!-- not run: (.+?) -->\s*\Z")

# Blocks deliberately not run: their first line, and why (the README's mark must say the same).
NOT_RUN: dict[str, str] = {
    "core.users.login(": (
        "it needs a server with providers configured and a real provider's token"
    ),
}

# What each run block prints, in README order: (a line that names the block, a regex for its
# whole stdout). Adding a snippet to the README means adding it here.
EXPECTED: list[tuple[str, str]] = [
    ("def on_user_login(evt):", rf"created Donna\n(?P<user_id>{UUID})\n(?P=user_id)\n"),
    ("async def main():", rf"(?P<user_id>{UUID})\n"),
    # the first start: nothing saved yet, then the next start restores
    ("def on_login(evt):  # login or restore: the same login object", r"login: Donna\n"),
    ("async def main():", r"restore: Donna\nEvent\(name='is_valid_login', .*result=True.*\)\n"),
]


def blocks() -> list[tuple[str, str, str]]:
    """(language, code, the text just before the fence) for every fenced block."""
    text = README.read_text(encoding="utf-8")
    return [(m[1], m[2], text[: m.start()]) for m in FENCE.finditer(text)]


def python_blocks() -> tuple[list[str], dict[str, str]]:
    """The python blocks to run, and the skipped ones (first line: the README's reason)."""
    run: list[str] = []
    skipped: dict[str, str] = {}
    for language, code, before in blocks():
        if language != "python":
            continue
        mark = NOT_RUN_MARK.search(before)
        if mark:
            skipped[code.splitlines()[0]] = mark[1]
        else:
            run.append(code)
    return run, skipped


def serve_commands() -> list[str]:
    """The distinct ``corelogin serve`` lines of the README's sh blocks."""
    lines = [
        line.strip()
        for language, code, _ in blocks()
        if language == "sh"
        for line in code.splitlines()
        if re.match(r"^([A-Z_]+=\S+ )*corelogin serve\b", line.strip())
    ]
    return list(dict.fromkeys(lines))


def with_port(argv: list[str], port: int) -> list[str]:
    """``argv`` with the value of ``--port`` replaced, and nothing else changed."""
    out = list(argv)
    if "--port" in out:
        out[out.index("--port") + 1] = str(port)
        return out
    raise AssertionError(f"the README's serve command has no --port: {shlex.join(argv)}")


def start(command: str, port: int, cwd: Path) -> tuple[subprocess.Popen[str], str]:
    """Run a README serve line (its environment assignments, then the command) on ``port``,
    in ``cwd`` so that a relative --db lands there; returns the process and its app key."""
    words = shlex.split(command)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORELOGIN_")}
    while "=" in words[0]:
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    assert words[:2] == ["corelogin", "serve"], command
    assert "--port" in words
    assert words[words.index("--port") + 1] == URL.rsplit(":", 1)[1], (
        "the serve command and the snippets' URL disagree on the port"
    )
    script = Path(sys.executable).parent / "corelogin"  # the console script pip installed
    program = [str(script)] if script.exists() else [sys.executable, "-m", "corelogin.cli"]
    proc = subprocess.Popen(
        [*program, *with_port(words[1:], port)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, env.get("CORELOGIN_KEY", "")


def stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    return err


@pytest.fixture
def readme_server(tmp_path: Path) -> Iterator[str]:
    """The server as the README's first serve line starts it, on a free port; yields its URL."""
    commands = serve_commands()
    assert commands, "the README shows no `corelogin serve` command"
    port = free_port()
    proc, key = start(commands[0], port, tmp_path)
    try:
        url = f"http://127.0.0.1:{port}"
        assert wait_for_health(url, proc) == {"result": "ok"}
        yield url
    finally:
        err = stop(proc)
    assert "Traceback" not in err, err
    assert key
    assert key not in err  # the key is never logged


def test_the_skipped_blocks_are_named_here_with_their_reason() -> None:
    _, skipped = python_blocks()
    assert skipped == NOT_RUN, "every <!-- not run: ... --> block is named in NOT_RUN, same reason"


def test_every_serve_command_starts_a_healthy_server(tmp_path: Path) -> None:
    for n, command in enumerate(serve_commands()):
        cwd = tmp_path / str(n)
        cwd.mkdir()
        port = free_port()
        proc, _ = start(command, port, cwd)
        try:
            assert wait_for_health(f"http://127.0.0.1:{port}", proc) == {"result": "ok"}
        finally:
            err = stop(proc)
        assert "Traceback" not in err, err


def test_the_python_snippets_run_as_shown(readme_server: str, tmp_path: Path) -> None:
    run, _ = python_blocks()
    assert len(run) == len(EXPECTED), "a README snippet was added or removed: update EXPECTED"
    for code, (name, _) in zip(run, EXPECTED, strict=True):
        assert name in code.splitlines(), f"README snippets out of order: expected {name!r}"
    user_ids = set()
    for code, (name, expected) in zip(run, EXPECTED, strict=True):
        assert URL in code, f"{name}: the snippet does not use {URL}"
        assert not re.search(r"http://(?!127\.0\.0\.1:10001\b)", code), name
        done = subprocess.run(
            [sys.executable, "-c", code.replace(URL, readme_server)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, (name, done.stderr)
        assert "Traceback" not in done.stderr, (name, done.stderr)
        assert done.stderr == "", (name, done.stderr)
        printed = re.fullmatch(expected, done.stdout)
        assert printed, (name, done.stdout)
        if "user_id" in printed.re.groupindex:
            user_ids.add(printed["user_id"])
    assert len(user_ids) == 1  # every snippet that shows an id logged in the same Donna
