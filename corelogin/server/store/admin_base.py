"""What the admin page keeps and reads (issue 12): operators, their sessions, the audit log,
and the queries of the page (users by page, the day's figures). Part of the `Store` contract.

Operators are the server's, not a scope's: one operator looks after every scope. Their failed
sign-ins are counted by the lockout of logins (`Store.record_failure`) under the scope
`OPERATOR_SCOPE`, which no game can have (a game's scope is never empty).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol

import attrs

if TYPE_CHECKING:  # base.py builds Store on AdminStore (so the import goes the other way)
    from corelogin.server.store.base import SessionRecord, UserRecord

__all__ = [
    "OPERATOR_SCOPE",
    "AdminSession",
    "AdminStore",
    "AuditEntry",
    "DayCount",
    "DuplicateOperatorError",
    "Operator",
    "UserPage",
    "UserQuery",
    "UserSummary",
]

# The scope of operators' failed sign-ins (lockout); empty, so no game's.
OPERATOR_SCOPE = ""


class DuplicateOperatorError(Exception):
    """An operator of that name exists already."""


@attrs.frozen
class Operator:
    name: str
    password_hash: str = attrs.field(repr=False)
    created: float


@attrs.frozen
class AdminSession:
    """An operator's signed-in session, kept by the SHA-256 of its cookie's token."""

    token_hash: str = attrs.field(repr=False)
    operator: str
    created: float
    expires: float
    last_seen: float


@attrs.frozen
class AuditEntry:
    """One action an operator took: who, when, what, on which user of which scope."""

    at: float
    operator: str
    action: str
    scope: str | None = None
    target: str | None = None  # a user_id
    detail: str | None = None


UserOrder = Literal["created", "last_login"]


@attrs.frozen
class UserQuery:
    """One page of a scope's users, newest first by ``order``: by ``created``, or by
    ``last_login`` with those who never logged in last (ties: the greater user_id first).
    ``search`` (stripped; blank is no search) finds a username or email starting with it,
    compared by their keys (`username_key`, `email_key`: regardless of case and Unicode form;
    ``%`` and ``_`` are plain characters), or an exact user_id. The filters are None for
    "either"; ``locked`` is about the username's or the email's lockout identifier
    (`corelogin.server.lockout.identifier`) at ``now``. ``after`` is the ``next`` of the page
    before (keyset pagination: as fast on page 1,000 as on page 1). Ordered by ``created``, a
    walk of the pages visits every user there was at its start (and still is) exactly once,
    whoever is created or deleted meanwhile; ordered by ``last_login``, a user who logs in
    meanwhile moves to the front, and is missed if the walk had not reached them."""

    scope: str
    search: str | None = None
    group: str | None = None
    active: bool | None = None
    pending: bool | None = None  # awaiting confirmation
    locked: bool | None = None  # username or email locked out at ``now``
    now: float = 0.0
    order: UserOrder = "created"
    after: str | None = None
    limit: int = 50


@attrs.frozen
class UserSummary:
    user: UserRecord
    last_login: float | None


@attrs.frozen
class UserPage:
    users: list[UserSummary]
    next: str | None  # the ``after`` of the next page; None on the last


@attrs.frozen
class DayCount:
    day: str  # YYYY-MM-DD, UTC
    count: int


class AdminStore(Protocol):
    async def add_operator(self, operator: Operator) -> None:
        """Raise `DuplicateOperatorError` if the name is taken (changing nothing)."""

    async def get_operator(self, name: str) -> Operator | None: ...

    async def set_operator_password(self, name: str, password_hash: str) -> bool:
        """False if there is no such operator. Ends the operator's sessions (in the same
        transaction)."""

    async def remove_operator(self, name: str) -> bool:
        """Delete the operator and its sessions (the audit log keeps its name)."""

    async def open_admin_session(self, session: AdminSession) -> None:
        """Keep a new session; LookupError when its operator does not exist."""

    async def admin_session(self, token_hash: str) -> AdminSession | None:
        """The session, whatever its age, if its operator still exists."""

    async def touch_admin_session(self, token_hash: str, now: float) -> None: ...

    async def end_admin_session(self, token_hash: str) -> None: ...

    async def record_audit(self, entry: AuditEntry) -> None: ...

    async def audit_log(
        self, *, scope: str | None = None, target: str | None = None, limit: int = 50
    ) -> list[AuditEntry]:
        """The newest entries first, in the order they were recorded (of one scope, of one
        user)."""

    async def list_users(self, query: UserQuery) -> UserPage:
        """One page of `UserQuery`; ValueError when ``after`` is not a ``next`` of this order
        (malformed or mangled: answer 400) or ``limit`` is below 1."""

    async def user_sessions(self, user_id: str) -> list[SessionRecord]:
        """The user's sessions, newest first (expired ones included until they are pruned)."""

    async def joins_per_day(self, scope: str, since: float) -> list[DayCount]:
        """Users created per UTC day from ``since`` (at or after), ascending by day, days
        without any left out."""

    async def logins_per_day(self, scope: str, since: float) -> list[DayCount]:
        """Login events of the scope's users per UTC day from ``since`` (at or after),
        ascending by day, days without any left out."""

    async def pending_count(self, scope: str) -> int:
        """Users awaiting confirmation."""

    async def locked_identifiers(self, scope: str, now: float) -> list[tuple[str, float]]:
        """(identifier, locked until) of the identifiers locked at ``now``, by identifier."""

    async def failed_count(self, scope: str, since: float) -> int:
        """Failed logins from ``since`` (at or after), whatever their reason."""
