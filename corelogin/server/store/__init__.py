"""Store backends, side by side, behind one interface (`Store`)."""

from __future__ import annotations

from corelogin.server.store.base import (
    CodeRecord,
    CodeState,
    DuplicateLinkError,
    DuplicateUserError,
    ExtraTooLarge,
    LoginEvent,
    ProviderLink,
    SessionRecord,
    Store,
    StoreError,
    StoreUnavailable,
    UserChanges,
    UserRecord,
    email_key,
    merge_extra,
    username_key,
)

__all__ = [
    "CodeRecord",
    "CodeState",
    "DuplicateLinkError",
    "DuplicateUserError",
    "ExtraTooLarge",
    "LoginEvent",
    "ProviderLink",
    "SessionRecord",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "UserChanges",
    "UserRecord",
    "email_key",
    "merge_extra",
    "open_store",
    "username_key",
]


def open_store(url: str) -> Store:
    """The backend for a database URL.

    SQLite, as SQLAlchemy spells it: ``sqlite:///relative/path``, ``sqlite:////absolute/path``
    (four slashes), ``sqlite:///:memory:``; a plain file path works too.
    """
    if url.startswith("sqlite:///") or "://" not in url:
        from corelogin.server.store.sqlite import SQLiteStore

        return SQLiteStore(url.removeprefix("sqlite:///"))
    if url.startswith(("postgresql://", "postgres://")):
        raise ValueError("the PostgreSQL store is not available yet; use sqlite:///PATH")
    scheme = url.split("://", 1)[0]
    raise ValueError(f"unsupported database URL {scheme}://... (expected sqlite:///PATH)")
