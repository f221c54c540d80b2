"""``corelogin token USER_ID``: a one-time login token printed as JSON, from --db or --config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import corelogin
from corelogin.server import ServerThread
from tests.helpers import APP_KEY, PASSWORD, server_config_for

TOKEN = [sys.executable, "-m", "corelogin.cli", "token"]


def clean_env() -> dict[str, str]:
    """The environment without any CORELOGIN_ setting (no app key, no database)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CORELOGIN_")}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TOKEN, *args], env=clean_env(), capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "token.sqlite3"


@pytest.fixture
def running(db: Path) -> Iterator[ServerThread]:
    with ServerThread(server_config_for(db)) as server:
        yield server


@pytest.fixture
def user_id(running: ServerThread) -> str:
    with corelogin.init(running.url, APP_KEY, session_store=corelogin.MemorySessionStore()) as core:
        event = core.users.create({"username": "Donna", "password": PASSWORD}).result(30)
    assert event.error is None, event
    return str(event.result.user_id)


def log_in_with(url: str, token: str) -> list[corelogin.Event]:
    with corelogin.init(url, APP_KEY, session_store=corelogin.MemorySessionStore()) as core:
        first = core.users.login_with_auth_token({"auth_token": token}).result(30)
        held = core.users.logged_in_user
        second = core.users.login_with_auth_token({"auth_token": token}).result(30)
    assert held is not None
    assert held == first.result
    return [first, second]


def test_token_prints_json_that_logs_in_once(running: ServerThread, user_id: str, db: Path) -> None:
    before = time.time()
    done = run(user_id, "--db", f"sqlite:///{db}")

    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert set(printed) == {"auth_token", "expires"}
    assert isinstance(printed["auth_token"], str)
    assert printed["auth_token"]
    assert isinstance(printed["expires"], int)
    assert before + 299 <= printed["expires"] <= time.time() + 301
    assert done.stdout.count("\n") == 1

    first, second = log_in_with(running.url, printed["auth_token"])
    assert first.error is None, first
    assert first.result.user_id == user_id
    assert second.status == 615, second


def test_token_from_a_config_file_needs_no_app_key(
    running: ServerThread, user_id: str, db: Path, tmp_path: Path
) -> None:
    config = tmp_path / "corelogin.toml"
    config.write_text(f'db = "sqlite:///{db}"\n')

    done = run(user_id, "--config", str(config))

    assert done.returncode == 0, done.stderr
    token = json.loads(done.stdout)["auth_token"]
    first, _ = log_in_with(running.url, token)
    assert first.error is None
    assert first.result.user_id == user_id


def test_token_for_an_unknown_user_exits_1_with_one_line(
    running: ServerThread, user_id: str, db: Path
) -> None:
    done = run("no-such-user", "--db", f"sqlite:///{db}")

    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert "no-such-user" in done.stderr
    assert "Traceback" not in done.stderr


def test_token_for_a_user_of_another_scope_exits_1(
    running: ServerThread, user_id: str, db: Path
) -> None:
    done = run(user_id, "--db", f"sqlite:///{db}", "--scope", "other")

    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1


def test_token_with_an_unusable_database_exits_2_with_one_line(tmp_path: Path) -> None:
    done = run("someone", "--db", f"sqlite:///{tmp_path}/missing/dir/x.sqlite3")

    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("corelogin token: ")
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "missing").exists()
