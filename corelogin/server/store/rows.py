"""What both SQL backends share: the columns of a user and of a link, a row as a record and a
record as a row, and the rules that read rows (a code's state, the links an update ends).

Only the placeholders differ between the backends' statements (``?`` and ``$1``).
"""

from __future__ import annotations

import json
from typing import Any, Final, Protocol

from corelogin.server.store.base import (
    CodeState,
    SessionRecord,
    UserRecord,
    email_key,
    username_key,
)

__all__ = [
    "CLEAR_NEEDED",
    "LINK_COLUMNS",
    "SESSION_COLUMNS",
    "SESSION_OWNER",
    "USER_COLUMNS",
    "Row",
    "code_state",
    "expired_links",
    "session_owner_from_row",
    "user_from_row",
    "user_row",
]

USER_COLUMNS: Final = (
    "user_id, scope, username, email, password_hash, active, confirmation, user_group, extra, "
    "created"
)

SESSION_COLUMNS: Final = "token_hash, user_id, created, expires, last_seen"

# A session and its user, in one row: the session's columns, then the user's.
SESSION_OWNER: Final = (
    "SELECT s.token_hash, s.user_id, s.created, s.expires, s.last_seen, u.user_id, u.scope, "
    "u.username, u.email, u.password_hash, u.active, u.confirmation, u.user_group, u.extra, "
    "u.created FROM sessions s JOIN users u ON u.user_id = s.user_id WHERE s.token_hash = "
)

LINK_COLUMNS: Final = (
    "user_id, scope, provider, client_id, access_token, access_token_expiry, created"
)


class Row(Protocol):
    """A row of either driver (sqlite3.Row, asyncpg.Record, a tuple): read by position."""

    def __getitem__(self, index: int, /) -> Any: ...


# Whether a lockout identifier has anything to clear: a lock, or failures after its count
# started. ($1 scope, $2 identifier; SQLite reads $N as ?N.)
CLEAR_NEEDED: Final = (
    "SELECT l.locked_until IS NOT NULL OR EXISTS (SELECT 1 FROM failed_logins f "
    "WHERE f.scope = $1 AND f.identifier = $2 AND f.id > COALESCE(l.counted_after, 0)) "
    "FROM (SELECT 1) AS one LEFT JOIN lockouts l ON l.scope = $1 AND l.identifier = $2"
)


def user_from_row(row: Row) -> UserRecord:
    extra = row[8]
    return UserRecord(
        user_id=row[0],
        scope=row[1],
        username=row[2],
        email=row[3],
        password_hash=row[4],
        active=bool(row[5]),
        confirmation=row[6],
        group=row[7],
        extra=None if extra is None else json.loads(extra),
        created=row[9],
    )


def session_owner_from_row(row: Row) -> tuple[SessionRecord, UserRecord]:
    """A row of `SESSION_OWNER`."""
    session = SessionRecord(row[0], row[1], row[2], row[3], row[4])
    return session, user_from_row([row[i] for i in range(5, 15)])


def user_row(user: UserRecord) -> tuple[Any, ...]:
    """The values of the users table's columns, in the order of its INSERT statements:
    user_id, scope, username, username_key, email, email_key, password_hash, active,
    confirmation, user_group, extra, created."""
    return (
        user.user_id,
        user.scope,
        user.username,
        username_key(user.username),
        user.email,
        None if user.email is None else email_key(user.email),
        user.password_hash,
        user.active,
        user.confirmation,
        user.group,
        None if user.extra is None else json.dumps(user.extra),
        user.created,
    )


def code_state(row: Row | None, now: float) -> CodeState:
    """The state of a code from its (used, expires) columns."""
    if row is None:
        return CodeState.UNKNOWN
    if row[0] is not None:
        return CodeState.USED
    if row[1] <= now:
        return CodeState.EXPIRED
    return CodeState.VALID


def expired_links(old: UserRecord, new: UserRecord) -> list[str]:
    """The purposes of the links an update makes worthless: both when the address changes
    (they went to the old one), reset links when the password changes."""
    if new.email != old.email:
        return ["confirm", "reset"]
    return ["reset"] if new.password_hash != old.password_hash else []
