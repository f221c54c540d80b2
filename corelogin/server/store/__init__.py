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
    "is_postgres",
    "merge_extra",
    "open_store",
    "username_key",
]


def open_store(url: str, *, pool_min: int = 2, pool_max: int = 10, timeout: float = 10.0) -> Store:
    """The backend for a database URL.

    SQLite, as SQLAlchemy spells it: ``sqlite:///relative/path``, ``sqlite:////absolute/path``
    (four slashes), ``sqlite:///:memory:``; a plain file path works too. PostgreSQL:
    ``postgresql://user@host:port/database`` (libpq's form; the password from PGPASSWORD or
    ~/.pgpass), with a pool of ``pool_min`` to ``pool_max`` connections that waits up to
    ``timeout`` seconds for a connection or a statement.
    """
    if url.startswith("sqlite:///") or "://" not in url:
        from corelogin.server.store.sqlite import SQLiteStore

        return SQLiteStore(url.removeprefix("sqlite:///"))
    if is_postgres(url):
        try:
            from corelogin.server.store.postgres import PostgresStore
        except ImportError:  # asyncpg is not installed
            raise ValueError(
                "PostgreSQL needs the 'postgres' extra: pip install 'corelogin[postgres]'"
            ) from None
        return PostgresStore(url, pool_min=pool_min, pool_max=pool_max, timeout=timeout)
    scheme = url.split("://", 1)[0]
    raise ValueError(
        f"unsupported database URL {scheme}://... (expected sqlite:///PATH or postgresql://...)"
    )


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))
