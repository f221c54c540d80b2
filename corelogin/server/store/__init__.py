"""Store backends, side by side, behind one interface (`Store`)."""

from __future__ import annotations

from corelogin.server.store.base import (
    DuplicateUserError,
    LoginEvent,
    SessionRecord,
    Store,
    UserRecord,
    email_key,
    username_key,
)

__all__ = [
    "DuplicateUserError",
    "LoginEvent",
    "SessionRecord",
    "Store",
    "UserRecord",
    "email_key",
    "open_store",
    "username_key",
]


def open_store(url: str) -> Store:
    """The backend for a database URL: ``sqlite:///PATH`` (or ``sqlite:///:memory:``)."""
    if url.startswith("sqlite:///"):
        from corelogin.server.store.sqlite import SQLiteStore

        return SQLiteStore(url.removeprefix("sqlite:///"))
    if url.startswith(("postgresql://", "postgres://")):
        raise ValueError("the PostgreSQL store is not available yet; use sqlite:///PATH")
    raise ValueError(f"unsupported database URL (expected sqlite:///PATH): {url.split(':')[0]}")
