"""The SQLite store alone: WAL, the schema versioned by ``PRAGMA user_version`` (and refused
when newer), files readable by their owner only, servers opening one new file together, the
forms of its URLs, and the re-keying of emails of a schema 1 database."""

from __future__ import annotations

import asyncio
import sqlite3
from functools import partial
from pathlib import Path

import pytest

from corelogin.server.store import StoreError, open_store
from corelogin.server.store.sqlite import SQLiteStore
from corelogin.server.store.sqlite_schema import MIGRATIONS
from tests.store.conftest import record, sqlite_rows

record = partial(record, password_hash="$argon2id$fake", extra={"k": [1, "two"]})

FULLWIDTH = "\uff24\uff4f\uff4e\uff4e\uff41@home.com"  # "Donna@home.com" in fullwidth letters


async def test_schema_is_created_versioned_and_in_wal_mode(path: Path) -> None:
    store = SQLiteStore(str(path))
    await store.open()
    await store.close()

    assert sqlite_rows(path, "PRAGMA journal_mode") == [("wal",)]
    assert sqlite_rows(path, "PRAGMA user_version") == [(len(MIGRATIONS),)]


async def test_a_newer_schema_is_refused(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer"):
        await SQLiteStore(str(path)).open()


def test_open_store_knows_its_urls(tmp_path: Path) -> None:
    assert isinstance(open_store(f"sqlite:///{tmp_path}/x.db"), SQLiteStore)
    with pytest.raises(ValueError, match="unsupported") as info:
        open_store("mysql://user:secret@host/db")
    assert "secret" not in str(info.value)


async def test_a_new_database_file_is_readable_by_its_owner_only(path: Path) -> None:
    store = SQLiteStore(str(path))
    await store.open()
    try:
        await store.create_user(record("u1", "Donna"))
        for name in (path, Path(f"{path}-wal")):
            assert name.stat().st_mode & 0o777 == 0o600, name
    finally:
        await store.close()


@pytest.mark.parametrize("round_", range(10))
async def test_servers_opening_one_new_file_together_all_succeed(
    tmp_path: Path, round_: int
) -> None:
    """Eight servers starting at once on a file that does not exist yet: each opens it, and
    the schema is made once (the race that used to end in "database is locked")."""
    path = tmp_path / f"new-{round_}.sqlite3"
    stores = [SQLiteStore(str(path)) for _ in range(8)]
    try:
        await asyncio.gather(*(store.open() for store in stores))
        await stores[0].create_user(record("u1", "Donna"))
        assert await stores[-1].user_exists("s", "donna", None)
    finally:
        for store in stores:
            await store.close()
    assert sqlite_rows(path, "PRAGMA user_version") == [(len(MIGRATIONS),)]


@pytest.mark.parametrize("form", ["sqlite:///{rel}", "sqlite:///{abs}", "{abs}", "{rel}"])
async def test_sqlite_urls_follow_sqlalchemy_and_plain_paths_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    monkeypatch.chdir(tmp_path)
    url = form.format(rel="data/x.sqlite3", abs=str(tmp_path / "data" / "x.sqlite3"))
    (tmp_path / "data").mkdir()
    store = open_store(url)
    await store.open()
    await store.close()
    assert (tmp_path / "data" / "x.sqlite3").exists()


async def test_a_database_path_that_cannot_be_used_is_one_clear_error(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'missing' / 'x.sqlite3'}")
    with pytest.raises(StoreError) as caught:
        await store.open()
    message = str(caught.value)
    assert "missing" in message
    assert "\n" not in message


def test_an_unsupported_database_url_says_what_is_expected() -> None:
    with pytest.raises(ValueError, match="expected sqlite:///PATH"):
        open_store("mysql://root@localhost/db")


async def test_the_migration_rekeys_emails_of_an_older_database(path: Path) -> None:
    """A database made by schema 1 (email keys only casefolded) gets NFKC keys at open."""
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0] + "; PRAGMA user_version = 1;")
    db.execute(
        "INSERT INTO users (user_id, scope, username, username_key, email, email_key, "
        "password_hash, active, user_group, extra, created) "
        "VALUES ('u1', 's', 'Donna', 'donna', ?, ?, 'h', 1, NULL, NULL, 1)",
        (FULLWIDTH, FULLWIDTH.casefold()),
    )
    db.commit()
    db.close()
    store = SQLiteStore(str(path))
    await store.open()
    try:
        found = await store.find_user("s", email="donna@home.com")
        assert found is not None
        assert found.email == FULLWIDTH  # the address as given is kept
    finally:
        await store.close()
