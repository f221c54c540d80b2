"""The store's tests: a store on a file of the test's own, and a database at an older schema."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from corelogin.server.store import UserRecord, email_key
from corelogin.server.store.sqlite import SQLiteStore
from corelogin.server.store.sqlite_schema import MIGRATIONS


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "store.sqlite3"


@pytest.fixture
async def store(path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(str(path))
    await opened.open()
    yield opened
    await opened.close()


def database_at_version(path: Path, version: int, *rows: str) -> None:
    """A database made by the first ``version`` migrations only (as an older corelogin left
    it), holding ``rows`` (INSERT statements)."""
    db = sqlite3.connect(path)
    try:
        db.create_function("corelogin_email_key", 1, email_key, deterministic=True)
        for number, script in enumerate(MIGRATIONS[:version], start=1):
            db.executescript(script)
            db.execute(f"PRAGMA user_version = {number}")
        for row in rows:
            db.execute(row)
        db.commit()
        assert db.execute("PRAGMA user_version").fetchone() == (version,)
    finally:
        db.close()


def record(
    user_id: str,
    username: str,
    email: str | None = None,
    *,
    scope: str = "s",
    password_hash: str = "$argon2id$old",  # noqa: S107 (not a real hash)
    active: bool = True,
    confirmation: str | None = None,
    extra: dict[str, Any] | None = None,
) -> UserRecord:
    """A user record as the tests store it (plain text where the server would hash)."""
    return UserRecord(
        user_id=user_id,
        scope=scope,
        username=username,
        email=email,
        password_hash=password_hash,
        active=active,
        confirmation=confirmation,
        group=None,
        extra=extra,
        created=1,
    )
