"""``corelogin migrate``: a SQLite database filled by the real server, copied into the real
PostgreSQL, serves the same users, sessions, links, codes and lockouts there; a second copy is
refused unless --replace; a failure halfway leaves the target as it was; bad arguments end
with one line and exit 2.

The CLI runs in-process (`corelogin.cli.main`, which calls asyncio.run), so these tests are
synchronous and set up their data in loops of their own.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import attrs
import pytest

import corelogin
from corelogin.cli import NO_PASSWORD_IN_URL, main
from corelogin.server import ServerConfig, start_server
from corelogin.server import migrate as migrate_module
from corelogin.server.store import LoginEvent, SessionRecord, UserRecord, open_store
from corelogin.server.store.admin_base import AdminSession, AuditEntry, Operator
from corelogin.server.store.base import FailedLogin, email_key
from corelogin.server.store.postgres import PostgresStore
from corelogin.server.store.postgres_schema import TABLES
from corelogin.server.store.sqlite import SQLiteStore
from corelogin.server.store.sqlite_schema import MIGRATIONS
from corelogin.wire import PATHS
from tests.helpers import APP_KEY, PASSWORD, server_config_for
from tests.mailserver import MailServer, link_in
from tests.netfaults import free_port
from tests.pages import open_page

pytestmark = pytest.mark.timeout(180)

WRONG = "not the password"
LOCKED = 606
CONFIRMATION = {"from_email": "noreply@game.example", "subject": "Confirm your address"}


# -- helpers ----------------------------------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``corelogin migrate ARGS`` in-process: exit status, stdout, stderr."""
    status = main(["migrate", *args])
    out, err = capsys.readouterr()
    return status, out, err


def summary_counts(out: str) -> dict[str, int]:
    """The per-table counts of the summary on stdout (its indented lines)."""
    found = {}
    for line in out.splitlines():
        if line.startswith("  "):
            table, count = line.split()
            found[table] = int(count)
    return found


def assert_one_line(err: str) -> None:
    """A start-up problem or a refusal: one line on stderr, no traceback."""
    assert err.endswith("\n")
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    assert err.startswith("corelogin migrate: ")


def sqlite_rows(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every copied table of the SQLite file (as SQLite gives them), sorted."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {
            table: sorted(
                con.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall(),  # noqa: S608
                key=repr,
            )
            for table, columns in TABLES.items()
        }
    finally:
        con.close()


async def pg_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every copied table on PostgreSQL, booleans as SQLite's 0/1, sorted."""
    conn = await asyncpg.connect(url)
    try:
        found = {}
        for table, columns in TABLES.items():
            rows = await conn.fetch(f"SELECT {', '.join(columns)} FROM {table}")  # noqa: S608
            found[table] = sorted(
                (tuple(int(v) if isinstance(v, bool) else v for v in row) for row in rows),
                key=repr,
            )
        return found
    finally:
        await conn.close()


def counts_of(rows: dict[str, list[tuple[Any, ...]]]) -> dict[str, int]:
    return {table: len(found) for table, found in rows.items()}


async def pg_fetch(url: str, sql: str) -> list[Any]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(row) for row in await conn.fetch(sql)]
    finally:
        await conn.close()


def config_for(db: Path, mail: MailServer) -> ServerConfig:
    """The server of these tests on ``db``: a trust_client_id provider, lockout after three
    failures, mail to ``mail``."""
    return attrs.evolve(
        server_config_for(db),
        providers={"legacy": {"policy": "trust_client_id"}},
        lockout_threshold=3,
        lockout_window_seconds=600,
        lockout_seconds=600,
        smtp_url=mail.url,
        smtp_timeout=5.0,
    )


@attrs.frozen
class Filled:
    """What `fill` left in the SQLite database, for the checks after the move."""

    url: str  # of the SQLite server, now stopped
    donna: str
    tina: str
    pam: str
    token: str  # Donna's stay_logged_in session
    confirm_link: str  # Pam's


async def result(request: corelogin.Request) -> Any:
    event = await request
    assert event.error is None, event
    return event.result


async def fill(config: ServerConfig, mail: MailServer) -> Filled:
    """Through the real server on SQLite: Donna (email, group, extra) with a saved session and
    a provider link; Tina, locked out by three wrong passwords; Pam, awaiting confirmation;
    failures of an unknown name."""
    saved = corelogin.MemorySessionStore()
    async with (
        await start_server(config) as running,
        corelogin.init(running.url, APP_KEY, session_store=saved) as core,
    ):
        donna = await result(
            core.users.create(
                {
                    "username": "Donna",
                    "password": PASSWORD,
                    "email": "donna@home.example",
                    "group": "vip",
                    "extra": {"level": 7},
                }
            )
        )
        tina = await result(core.users.create({"username": "Tina", "password": PASSWORD}))
        pam = await result(
            core.users.create(
                {
                    "username": "Pam",
                    "password": PASSWORD,
                    "email": "pam@home.example",
                    "confirmation": CONFIRMATION,
                }
            )
        )
        (message,) = await mail.wait_for_async(1)
        await result(core.users.login({"username": "Tina", "password": PASSWORD}))
        for _ in range(3):
            failed = await core.users.login({"username": "Tina", "password": WRONG})
            assert failed.error is not None
        assert (await core.users.login({"username": "Tina", "password": PASSWORD})).status == 606
        assert (await core.users.login({"username": "Nobody", "password": WRONG})).error
        await result(core.users.login({"username": "Donna", "password": PASSWORD}))
        await result(
            core.users.add_auth_provider(
                {"user_id": donna.user_id, "provider": "legacy", "auth": {"client_id": "leg-1"}}
            )
        )
        await result(core.users.login({"provider": "legacy", "client_id": "leg-1"}))
        await result(
            core.users.login({"username": "Donna", "password": PASSWORD, "stay_logged_in": True})
        )
        token = saved.load(f"{running.url}|default")
        assert token is not None
        url = running.url
    return Filled(
        url=url,
        donna=donna.user_id,
        tina=tina.user_id,
        pam=pam.user_id,
        token=token,
        confirm_link=link_in(message, PATHS["confirm"]),
    )


async def add_operator_rows(url: str) -> None:
    """What the admin page keeps, written through the store (of SQLite or PostgreSQL): an
    operator signed in, and two audit entries."""
    store = open_store(url, pool_min=1, pool_max=1)
    await store.open()
    try:
        now = time.time()
        if await store.get_operator("ada") is None:
            await store.add_operator(Operator("ada", "$argon2id$not-a-real-hash", now))
            await store.open_admin_session(AdminSession("admin-hash", "ada", now, now + 60, now))
        for action in ("user.update", "user.unlock"):
            await store.record_audit(AuditEntry(now, "ada", action, "default", "someone"))
    finally:
        await store.close()


async def small_source(db: Path, users: int = 2) -> None:
    """A SQLite database written through the store: ``users`` users, each with a session and a
    login event, and one failed login."""
    store = SQLiteStore(str(db))
    await store.open()
    try:
        now = time.time()
        for n in range(users):
            user_id = f"user-{n}"
            await store.create_user(
                UserRecord(
                    user_id=user_id,
                    scope="default",
                    username=f"User{n}",
                    email=None,
                    password_hash="$argon2id$not-a-real-hash",
                    active=True,
                    confirmation=None,
                    group=None,
                    extra=None,
                    created=int(now),
                )
            )
            await store.open_session(
                SessionRecord(f"hash-{n}", user_id, now, now + 3600),
                LoginEvent(user_id, now, "127.0.0.1", "tests"),
            )
        await store.record_failure(
            FailedLogin("default", "nobody", now, "127.0.0.1", "tests", "unknown user")
        )
    finally:
        await store.close()


# -- the move, and the server on PostgreSQL afterwards ------------------------------------


def test_migrated_users_sessions_links_codes_and_lockouts_work_on_a_postgresql_server(
    tmp_path: Path, pg_url: str, mail_server: MailServer, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "old.sqlite3"
    config = config_for(db, mail_server)
    filled = asyncio.run(fill(config, mail_server))
    asyncio.run(add_operator_rows(str(db)))
    before = sqlite_rows(db)
    with sqlite3.connect(db) as con:
        session_order = [
            r[0] for r in con.execute("SELECT token_hash FROM sessions ORDER BY rowid")
        ]
        source_max_failure = con.execute("SELECT max(id) FROM failed_logins").fetchone()[0]
    assert {t: n for t, n in counts_of(before).items() if n == 0} == {}  # every table has rows

    status, out, err = run_cli(capsys, "--from", f"sqlite:///{db}", "--to", pg_url)

    assert (status, err) == (0, "")
    assert summary_counts(out) == counts_of(before)
    after = asyncio.run(pg_rows(pg_url))
    assert after == before  # every row of every table, value for value
    pg_order = asyncio.run(pg_fetch(pg_url, "SELECT token_hash FROM sessions ORDER BY id"))
    assert [r[0] for r in pg_order] == session_order
    asyncio.run(_serve_what_was_moved(attrs.evolve(config, db=pg_url), filled))

    # The identities go on past the copied ids: the server's new rows were inserted.
    grown = counts_of(asyncio.run(pg_rows(pg_url)))
    assert grown["failed_logins"] == len(before["failed_logins"]) + 2
    assert grown["login_events"] > len(before["login_events"])
    (new_max,) = asyncio.run(pg_fetch(pg_url, "SELECT max(id) FROM failed_logins"))
    assert new_max[0] == source_max_failure + 2
    asyncio.run(add_operator_rows(pg_url))  # two audit entries more, after the copied two
    ids = asyncio.run(pg_fetch(pg_url, "SELECT id FROM audit_log ORDER BY id"))
    assert [row[0] for row in ids] == [1, 2, 3, 4]


async def _serve_what_was_moved(config: ServerConfig, filled: Filled) -> None:
    """The server on PostgreSQL: the moved users log in as before."""
    saved = corelogin.MemorySessionStore()
    async with (
        await start_server(config) as running,
        corelogin.init(running.url, APP_KEY, session_store=saved) as core,
    ):
        # The session saved before the move restores without a password.
        saved.save(f"{running.url}|default", filled.token)
        restored = await result(core.users.restore())
        assert restored.user_id == filled.donna
        donna = await result(core.users.get({"user_id": filled.donna}))
        assert (donna.email, donna.group, donna.extra) == (
            "donna@home.example",
            "vip",
            {"level": 7},
        )

        login = await result(core.users.login({"username": "Donna", "password": PASSWORD}))
        assert login.user_id == filled.donna
        by_provider = await result(core.users.login({"provider": "legacy", "client_id": "leg-1"}))
        assert by_provider.user_id == filled.donna

        # Tina's lockout goes on, and every attempt is recorded (with a new id).
        locked = await core.users.login({"username": "Tina", "password": PASSWORD})
        assert locked.status == LOCKED
        unknown = await core.users.login({"username": "Nobody", "password": WRONG})
        assert unknown.error is not None

        # Pam's mailed code still confirms her (the link named the old server).
        link = filled.confirm_link.replace(filled.url, running.url)
        page = await open_page(link)
        assert page.status == 200
        assert "confirmed" in page.text.lower()
        pam = await result(core.users.login({"username": "Pam", "password": PASSWORD}))
        assert (pam.user_id, pam.active, pam.confirmation) == (filled.pam, True, None)


# -- twice, --replace ------------------------------------------------------------------------


def test_a_second_migration_is_refused_unchanged_and_replace_copies_afresh(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "old.sqlite3"
    asyncio.run(small_source(db, users=2))
    assert run_cli(capsys, "--from", str(db), "--to", pg_url)[0] == 0
    # Something written on the target since, which --replace must not keep.
    asyncio.run(_record_failure(pg_url, "after-the-move"))
    held = asyncio.run(pg_rows(pg_url))

    status, out, err = run_cli(capsys, "--from", str(db), "--to", pg_url)

    assert (status, out) == (1, "")
    assert_one_line(err)
    assert "the target already holds 2 users; --replace deletes them first" in err
    assert asyncio.run(pg_rows(pg_url)) == held

    status, out, err = run_cli(capsys, "--from", str(db), "--to", pg_url, "--replace")

    assert (status, err) == (0, "")
    assert "replaced the 2 users the target held" in out
    assert asyncio.run(pg_rows(pg_url)) == sqlite_rows(db)


async def _record_failure(url: str, identifier: str) -> None:
    store = PostgresStore(url, pool_min=1, pool_max=1)
    await store.open()
    try:
        await store.record_failure(
            FailedLogin("default", identifier, time.time(), None, None, "unknown user")
        )
    finally:
        await store.close()


def test_a_target_with_failures_but_no_users_is_refused_without_replace(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "old.sqlite3"
    asyncio.run(small_source(db))
    asyncio.run(_record_failure(pg_url, "someone"))

    status, _, err = run_cli(capsys, "--from", str(db), "--to", pg_url)

    assert status == 1
    assert_one_line(err)
    assert "already holds rows (failed_logins 1)" in err
    assert counts_of(asyncio.run(pg_rows(pg_url)))["users"] == 0


# -- failures halfway: nothing changes --------------------------------------------------------


def test_a_row_the_target_refuses_rolls_the_whole_copy_back(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "old.sqlite3"
    asyncio.run(small_source(db))
    with sqlite3.connect(db) as con:  # foreign keys are off on a plain connection
        con.execute(
            "INSERT INTO sessions (token_hash, user_id, created, last_seen, expires) "
            "VALUES ('orphan', 'no-such-user', 1, 1, 2)"
        )
    con.close()

    status, out, err = run_cli(capsys, "--from", str(db), "--to", pg_url)

    assert (status, out) == (1, "")
    assert_one_line(err)
    assert "copying sessions failed, nothing was changed" in err
    assert "foreign key" in err
    # users and login_events were copied before sessions failed: rolled back too.
    assert set(counts_of(asyncio.run(pg_rows(pg_url))).values()) == {0}


def test_a_count_that_differs_from_the_source_rolls_the_whole_copy_back(
    tmp_path: Path,
    pg_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = tmp_path / "old.sqlite3"
    asyncio.run(small_source(db, users=3))
    read_rows = migrate_module._rows

    async def one_lost(
        source: Any, table: str, columns: tuple[str, ...], converters: Any
    ) -> AsyncIterator[tuple[Any, ...]]:
        rows = [row async for row in read_rows(source, table, columns, converters)]
        for row in rows[:-1] if table == "login_events" else rows:
            yield row

    monkeypatch.setattr(migrate_module, "_rows", one_lost)

    status, out, err = run_cli(capsys, "--from", str(db), "--to", pg_url)

    assert (status, out) == (1, "")
    assert_one_line(err)
    assert "verification failed: login_events has 2 rows on the target but 3 in the source" in err
    assert set(counts_of(asyncio.run(pg_rows(pg_url))).values()) == {0}


def test_what_a_server_writes_to_the_source_during_the_copy_is_left_out_whole(
    tmp_path: Path,
    pg_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = tmp_path / "old.sqlite3"
    asyncio.run(small_source(db, users=2))
    read_rows = migrate_module._rows

    async def written_meanwhile(
        source: Any, table: str, columns: tuple[str, ...], converters: Any
    ) -> AsyncIterator[tuple[Any, ...]]:
        if table == "sessions":  # users are copied: a new user logs in on the old server
            with sqlite3.connect(db, timeout=10) as con:
                con.execute(
                    "INSERT INTO users (user_id, scope, username, username_key, password_hash, "
                    "active, created) VALUES ('late', 'default', 'Late', 'late', 'h', 1, 1)"
                )
                con.execute(
                    "INSERT INTO sessions (token_hash, user_id, created, last_seen, expires) "
                    "VALUES ('late-hash', 'late', 1, 1, 2)"
                )
            con.close()
        async for row in read_rows(source, table, columns, converters):
            yield row

    monkeypatch.setattr(migrate_module, "_rows", written_meanwhile)

    status, out, err = run_cli(capsys, "--from", str(db), "--to", pg_url)

    assert (status, err) == (0, "")
    assert summary_counts(out)["sessions"] == 2
    copied = asyncio.run(pg_rows(pg_url))
    assert [row[0] for row in copied["users"]] == ["user-0", "user-1"]
    assert [row[0] for row in copied["sessions"]] == ["hash-0", "hash-1"]
    assert counts_of(sqlite_rows(db))["sessions"] == 3  # the write did happen, after the snapshot


# -- the source's schema ----------------------------------------------------------------------


def test_a_source_of_an_older_schema_is_brought_up_to_date_and_copied(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "v3.sqlite3"
    con = sqlite3.connect(db)
    con.create_function("corelogin_email_key", 1, email_key)
    for script in MIGRATIONS[:3]:
        con.executescript(script)
    con.execute("PRAGMA user_version = 3")
    con.execute(
        "INSERT INTO users (user_id, scope, username, username_key, email, email_key, "
        "password_hash, active, confirmation, user_group, extra, created) "
        "VALUES ('old-1', 'default', 'Olga', 'olga', NULL, NULL, 'h', 1, NULL, NULL, NULL, 1)"
    )
    con.commit()
    con.close()

    status, out, err = run_cli(capsys, "--from", f"sqlite:///{db}", "--to", pg_url)

    assert (status, err) == (0, "")
    assert summary_counts(out)["failed_logins"] == 0  # a table the old schema did not have
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    con.close()
    rows = asyncio.run(pg_rows(pg_url))
    assert [r[:3] for r in rows["users"]] == [("old-1", "default", "Olga")]
    assert rows["users"][0][7] == 1  # active, a BOOLEAN true on PostgreSQL


# -- arguments refused before anything is touched (no PostgreSQL needed) ----------------------


def test_help_explains_the_transaction_the_upgrade_and_replace(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["migrate", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "one transaction on the target" in out
    assert "--replace" in out
    assert "brought up to date" in out


@pytest.fixture
def source(tmp_path: Path) -> Path:
    db = tmp_path / "old.sqlite3"
    asyncio.run(small_source(db))
    return db


UNUSED_PG = "postgresql://postgres@127.0.0.1:1/never"


@pytest.mark.parametrize(
    ("source_url", "target_url", "message"),
    [
        ("postgresql://u@h/db", UNUSED_PG, "--from must be a SQLite database"),
        ("SOURCE", "sqlite:///elsewhere.db", "--to must be a PostgreSQL database"),
        ("SOURCE", "mysql://u@h/db", "--to must be a PostgreSQL database"),
        ("sqlite:///:memory:", UNUSED_PG, "--from must name a SQLite file"),
        ("SOURCE", "postgresql://u:secret@h/db", NO_PASSWORD_IN_URL),
    ],
)
def test_unusable_urls_exit_2_with_one_line(
    source: Path,
    capsys: pytest.CaptureFixture[str],
    source_url: str,
    target_url: str,
    message: str,
) -> None:
    source_url = source_url.replace("SOURCE", f"sqlite:///{source}")
    status, out, err = run_cli(capsys, "--from", source_url, "--to", target_url)
    assert (status, out) == (2, "")
    assert_one_line(err)
    assert message in err
    assert "secret" not in err


def test_a_missing_source_is_refused_and_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "typo.sqlite3"
    status, _, err = run_cli(capsys, "--from", f"sqlite:///{missing}", "--to", UNUSED_PG)
    assert status == 2
    assert_one_line(err)
    assert f"no SQLite database at {missing}" in err
    assert not missing.exists()


def test_a_sqlite_file_corelogin_never_set_up_is_refused_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.sqlite3"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE scores (name TEXT, points INTEGER)")
    con.close()
    status, _, err = run_cli(capsys, "--from", str(other), "--to", UNUSED_PG)
    assert status == 2
    assert_one_line(err)
    assert "is not a corelogin database" in err
    with sqlite3.connect(other) as con:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    con.close()
    assert tables == ["scores"]


def test_a_file_that_is_not_a_database_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("not a database\n" * 100)
    status, _, err = run_cli(capsys, "--from", str(junk), "--to", UNUSED_PG)
    assert status == 2
    assert_one_line(err)
    assert "cannot read the SQLite database" in err


def test_an_unreachable_target_exits_2_with_one_line_and_leaves_the_source_alone(
    source: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    before = sqlite_rows(source)
    status, out, err = run_cli(capsys, "--from", str(source), "--to", target)
    assert (status, out) == (2, "")
    assert_one_line(err)
    assert "cannot use the PostgreSQL database 127.0.0.1/nothing" in err
    assert sqlite_rows(source) == before
