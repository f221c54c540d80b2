"""``corelogin admin add|passwd|remove NAME`` (issue 12): operators made on the server, the
password from CORELOGIN_ADMIN_PASSWORD or asked twice, the database found as ``serve`` finds it,
and a new password or a removal ending the operator's sessions on the running server."""

from __future__ import annotations

import asyncio
import getpass
from pathlib import Path

import pytest

from corelogin.cli import main
from corelogin.server import RunningServer, ServerConfig
from tests.adminpage import (
    Browser,
    both_backends,  # noqa: F401 (the server_config fixture: SQLite and PostgreSQL)
)

NAME = "olga"
PASSWORD = "operator pass phrase 1"
NEW_PASSWORD = "another operator phrase 2"


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORELOGIN_ADMIN_PASSWORD", PASSWORD)
    monkeypatch.delenv("CORELOGIN_DB", raising=False)


async def admin(*args: str) -> int:
    """The command, off the loop the server runs on (it runs a loop of its own)."""
    return await asyncio.to_thread(main, ["admin", *args])


async def signs_in(server: RunningServer, password: str = PASSWORD) -> int:
    async with Browser(server) as browser:
        return (await browser.sign_in(NAME, password)).status


async def test_add_then_sign_in(
    server: RunningServer, server_config: ServerConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await admin("add", NAME, "--db", server_config.db) == 0
    assert capsys.readouterr().out == f"operator {NAME} added\n"
    assert await signs_in(server) == 303
    assert await signs_in(server, "wrong password!") == 401
    operator = await server.store.get_operator(NAME)
    assert operator is not None
    assert operator.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    entries = await server.store.audit_log()
    assert ("(command line)", "operator_add", NAME) in [
        (e.operator, e.action, e.detail) for e in entries
    ]


async def test_a_name_is_added_once(
    server: RunningServer, server_config: ServerConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await admin("add", NAME, "--db", server_config.db) == 0
    assert await admin("add", NAME, "--db", server_config.db) == 1
    assert "exists already" in capsys.readouterr().err


async def test_passwd_changes_the_password_and_ends_the_sessions(
    server: RunningServer, server_config: ServerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert await admin("add", NAME, "--db", server_config.db) == 0
    async with Browser(server) as browser:
        assert (await browser.sign_in(NAME, PASSWORD)).status == 303
        assert (await browser.get("/admin/users")).status == 200
        monkeypatch.setenv("CORELOGIN_ADMIN_PASSWORD", NEW_PASSWORD)
        assert await admin("passwd", NAME, "--db", server_config.db) == 0
        assert (await browser.get("/admin/users")).status == 303  # signed out
    assert await signs_in(server, PASSWORD) == 401
    assert await signs_in(server, NEW_PASSWORD) == 303


async def test_remove_ends_the_sessions(
    server: RunningServer, server_config: ServerConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await admin("add", NAME, "--db", server_config.db) == 0
    async with Browser(server) as browser:
        assert (await browser.sign_in(NAME, PASSWORD)).status == 303
        assert await admin("remove", NAME, "--db", server_config.db) == 0
        answer = await browser.get("/admin/users")
        assert (answer.status, answer.location) == (303, "/admin/?error=signed_out")
    assert await signs_in(server) == 401
    assert await server.store.get_operator(NAME) is None
    assert await admin("remove", NAME, "--db", server_config.db) == 1
    assert await admin("passwd", NAME, "--db", server_config.db) == 1
    assert capsys.readouterr().err.count(f"no operator {NAME}") == 2


async def test_the_database_comes_from_the_environment_or_the_config_file(
    server: RunningServer,
    server_config: ServerConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CORELOGIN_DB", server_config.db)
    assert await admin("add", NAME) == 0
    monkeypatch.delenv("CORELOGIN_DB")
    config = tmp_path / "server.toml"
    config.write_text(f'db = "{server_config.db}"\n')
    assert await admin("add", "otto", "--config", str(config)) == 0
    assert await server.store.get_operator(NAME) is not None
    assert await server.store.get_operator("otto") is not None


def test_the_password_is_asked_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CORELOGIN_ADMIN_PASSWORD")
    db = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    answers = iter([PASSWORD, PASSWORD + "x"])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(answers))
    assert main(["admin", "add", NAME, "--db", db]) == 1
    assert "the two passwords differ" in capsys.readouterr().err
    answers = iter([PASSWORD, PASSWORD])
    assert main(["admin", "add", NAME, "--db", db]) == 0


@pytest.mark.parametrize(
    ("name", "password", "message"),
    [
        ("olga", "short", "at least 8 characters"),
        ("olga", "password", "too easy to guess"),  # 8 characters, but among the commonest
        ("olga", "x" * 1025, "longer than 1024 bytes"),
        ("o lga", PASSWORD, "a name is 1 to 64"),
        ("", PASSWORD, "a name is 1 to 64"),
    ],
)
def test_weak_passwords_and_odd_names_are_refused(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    password: str,
    message: str,
) -> None:
    monkeypatch.setenv("CORELOGIN_ADMIN_PASSWORD", password)
    db = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    assert main(["admin", "add", name, "--db", db]) == 1
    assert message in capsys.readouterr().err


def test_an_unusable_database_is_one_line_and_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'missing' / 'dir' / 'db.sqlite3'}"
    assert main(["admin", "add", NAME, "--db", db]) == 2
    err = capsys.readouterr().err
    assert err.startswith("corelogin admin add: ")
    assert err.count("\n") == 1
