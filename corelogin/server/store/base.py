"""The store contract: what the server keeps, and the one interface every backend implements.

No SQL lives outside the backend modules beside this one. Uniqueness is defined here, by
`username_key` and `email_key`, so that every backend enforces the same rule.
"""

from __future__ import annotations

import unicodedata
from typing import Any, Protocol

import attrs

__all__ = [
    "DuplicateUserError",
    "LoginEvent",
    "SessionRecord",
    "Store",
    "StoreError",
    "UserRecord",
    "email_key",
    "username_key",
]


def username_key(username: str) -> str:
    """Usernames are unique per scope regardless of case or Unicode form (OWASP)."""
    return unicodedata.normalize("NFKC", username).casefold()


def email_key(email: str) -> str:
    """Emails are unique per scope regardless of letter case or Unicode width (a fullwidth
    address is the same address), as usernames are."""
    return unicodedata.normalize("NFKC", email).casefold()


class DuplicateUserError(Exception):
    """The username or the email is already taken in this scope."""


class StoreError(Exception):
    """The database cannot be opened or used; the message is one line for the operator."""


@attrs.frozen
class UserRecord:
    user_id: str
    scope: str
    username: str
    email: str | None
    password_hash: str = attrs.field(repr=False)
    active: bool
    confirmation: str | None
    group: str | None
    extra: dict[str, Any] | None
    created: int


@attrs.frozen
class SessionRecord:
    """A session, kept by the SHA-256 of its token (the token itself is never stored)."""

    token_hash: str = attrs.field(repr=False)
    user_id: str
    created: float
    expires: float


@attrs.frozen
class LoginEvent:
    user_id: str
    at: float
    remote: str | None
    user_agent: str | None


class Store(Protocol):
    """Persistence for the reference server. All methods are coroutines on the server's loop."""

    async def open(self) -> None:
        """Connect and create or upgrade the schema."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise if the store cannot answer."""

    async def create_user(self, user: UserRecord) -> None:
        """Insert a user; raise `DuplicateUserError` if the username or email is taken."""

    async def user_exists(self, scope: str, username: str, email: str | None) -> bool: ...

    async def find_user(
        self, scope: str, *, username: str | None = None, email: str | None = None
    ) -> UserRecord | None:
        """The user of ``scope`` with this username or email (compared by their keys)."""

    async def set_password_hash(self, user_id: str, password_hash: str) -> None: ...

    async def set_active(self, user_id: str, active: bool) -> None: ...

    async def open_session(self, session: SessionRecord, login: LoginEvent | None) -> None:
        """Keep a new session and, for an active user, its login event, in one transaction."""

    async def login_events(self, user_id: str) -> list[LoginEvent]: ...

    async def session_user(self, token_hash: str, now: float) -> str | None:
        """The user_id of a live session, or None."""
