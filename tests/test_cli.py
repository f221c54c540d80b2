"""``corelogin serve``: flags and environment, /health once ready, a clean refusal without a key."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import corelogin
from tests.helpers import wait_for_health
from tests.netfaults import free_port

SERVE = [sys.executable, "-m", "corelogin.cli", "serve"]


def test_serve_takes_the_key_from_the_environment_and_serves_logins(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "CORELOGIN_KEY": "env-key", "CORELOGIN_PORT": str(port)}
    proc = subprocess.Popen(
        [*SERVE, "--db", f"sqlite:///{tmp_path / 'cli.sqlite3'}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_for_health(url, proc) == {"result": "ok"}
        with corelogin.init(url, "env-key") as core:
            created = core.users.create({"username": "Cli", "password": "long enough"}).result(30)
            login = core.users.login({"username": "Cli", "password": "long enough"}).result(30)
        assert created.error is None
        assert login.result.user_id == created.result.user_id
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "env-key" not in err  # the key is never logged
    assert (tmp_path / "cli.sqlite3").exists()


def test_serve_without_a_key_refuses_to_start() -> None:
    env = {k: v for k, v in os.environ.items() if k != "CORELOGIN_KEY"}
    done = subprocess.run(
        [*SERVE, "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "app key is required" in done.stderr


@pytest.mark.parametrize(
    ("db", "says"),
    [
        ("sqlite:///{tmp}/missing/dir/x.sqlite3", "cannot use the SQLite database"),
        ("mysql://root@localhost/corelogin", "unsupported database URL"),
        ("postgresql://corelogin:s3cret@localhost/corelogin", "PGPASSWORD or use ~/.pgpass"),
        ("postgresql://postgres@127.0.0.1:1/corelogin", "cannot use the PostgreSQL database"),
    ],
    ids=["unusable-path", "unsupported-url", "password-in-flag", "unreachable-postgresql"],
)
def test_serve_start_up_errors_are_one_line_and_status_2(
    tmp_path: Path, db: str, says: str
) -> None:
    done = subprocess.run(
        [*SERVE, "--port", str(free_port()), "--key", "k", "--db", db.format(tmp=tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert says in done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr  # one line, no traceback
    assert "s3cret" not in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_serve_on_a_port_in_use_is_one_line_and_status_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*SERVE, "--port", str(port), "--key", "k", "--db", f"sqlite:///{tmp_path}/x.db"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_version_prints_the_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "corelogin.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"corelogin {corelogin.__version__}"


WITHOUT_SERVER_EXTRA = (
    "import sys\n"
    "sys.modules['argon2'] = None  # as if the server extra were not installed\n"
    "sys.modules['aiosqlite'] = None\n"
    "from corelogin.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def test_openapi_works_without_the_server_extra() -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_SERVER_EXTRA, "openapi"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["openapi"].startswith("3.")


def test_serve_without_the_server_extra_says_how_to_install_it() -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_SERVER_EXTRA, "serve", "--key", "k"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "[server]" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_takes_a_toml_config_and_min_password_length(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "corelogin.toml"
    config.write_text(f'app_key = "toml-key"\nport = {port}\ndb = "{tmp_path / "x.sqlite3"}"\n')
    proc = subprocess.Popen(
        [*SERVE, "--config", str(config), "--min-password-length", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_for_health(url, proc) == {"result": "ok"}
        with corelogin.init(url, "toml-key") as core:
            short = core.users.create({"username": "A", "password": "only 19 characters!"})
            event = short.result(30)
        assert event.status == corelogin.Status.USER_NOT_CREATED
        assert "20 characters" in (event.error or "")
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("SMTP_URL", "smtp://me:secret@mail.example.org:587", "smtp_password"),
        ("SMTP_URL", "ftp://mail.example.org", "smtp_url"),
        ("MAIL_FROM", "not an address", "mail_from"),
    ],
    ids=["password-in-url", "bad-scheme", "bad-sender"],
)
def test_serve_refuses_mail_settings_that_cannot_work(
    tmp_path: Path, setting: str, value: str, says: str
) -> None:
    """A mail setting that cannot work stops the server at start-up, in one line, rather
    than at the first confirmation mail."""
    env = {**os.environ, "CORELOGIN_KEY": "k", f"CORELOGIN_{setting}": value}
    done = subprocess.run(
        [*SERVE, "--port", str(free_port()), "--db", f"sqlite:///{tmp_path}/x.db"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert says in done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr  # one line, no traceback
    assert "s3cret" not in done.stderr
    assert "secret" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
