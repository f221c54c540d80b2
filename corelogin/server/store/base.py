"""The store contract: what the server keeps, and the one interface every backend implements.

No SQL lives outside the backend modules beside this one. Uniqueness is defined here, by
`username_key` and `email_key`, so that every backend enforces the same rule.
"""

from __future__ import annotations

import enum
import json
import unicodedata
from typing import Any, Literal, Protocol

import attrs

from corelogin.server.store.admin_base import AdminStore
from corelogin.wire import EXTRA_MAX_BYTES, ApiError, Status

__all__ = [
    "CodeRecord",
    "CodeState",
    "DuplicateLinkError",
    "DuplicateUserError",
    "ExtraTooLarge",
    "FailedLogin",
    "LockoutRule",
    "LoginEvent",
    "ProviderLink",
    "SessionLimit",
    "SessionLimitReached",
    "SessionRecord",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "UserChanges",
    "UserRecord",
    "apply_changes",
    "email_key",
    "merge_extra",
    "username_key",
]


def username_key(username: str) -> str:
    """Usernames are unique per scope regardless of case or Unicode form (OWASP)."""
    return unicodedata.normalize("NFKC", username).casefold()


def email_key(email: str) -> str:
    """Emails are unique per scope regardless of letter case or Unicode width (a fullwidth
    address is the same address), as usernames are."""
    return unicodedata.normalize("NFKC", email).casefold()


class DuplicateLinkError(Exception):
    """The user has that provider already, or the identity is linked to another user."""


class DuplicateUserError(Exception):
    """The username or the email is already taken in this scope."""


class ExtraTooLarge(Exception):
    """``extra`` would outgrow its limit once merged."""


def merge_extra(old: dict[str, Any] | None, patch: dict[str, Any]) -> dict[str, Any] | None:
    """``patch`` merged into ``old`` key by key, a None value removing its key (None when
    nothing is left); raises `ExtraTooLarge` past the limit of corelogin.wire."""
    merged = {**(old or {}), **patch}
    merged = {key: value for key, value in merged.items() if value is not None}
    if len(json.dumps(merged, ensure_ascii=False).encode()) > EXTRA_MAX_BYTES:
        raise ExtraTooLarge(f"extra would be larger than {EXTRA_MAX_BYTES} bytes")
    return merged or None


def apply_changes(user: UserRecord, changes: UserChanges) -> UserRecord:
    """``user`` with ``changes`` applied (raises `ExtraTooLarge`)."""
    values: dict[str, Any] = {
        name: value
        for name in ("username", "email", "password_hash", "group", "active")
        if (value := getattr(changes, name)) is not None
    }
    if changes.extra is not None:
        values["extra"] = merge_extra(user.extra, changes.extra)
    if changes.active is not None:  # an administrator decided: no more waiting for the link
        values["confirmation"] = None
    return attrs.evolve(user, **values)


class StoreError(Exception):
    """The database cannot be opened or used; the message is one line for the operator."""


class StoreUnavailable(StoreError):
    """The database did not answer (down, restarting, its connection cut, out of time): the
    call changed nothing it did not commit, and may be tried again (503, 810)."""


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
    # When it was last used (to the minute: see the server's sessions check); None: created.
    last_seen: float | None = None


@attrs.frozen
class ProviderLink:
    """A user's link to an OAuth provider. ``client_id`` is the identity at the provider (for
    a device, an identifier derived from its secret: the secret itself is never stored). The
    access token is kept as given: apps use it to call the provider."""

    user_id: str
    scope: str
    provider: str
    client_id: str
    access_token: str | None = attrs.field(default=None, repr=False)
    access_token_expiry: int | None = None
    created: float = 0.0


# Codes of mailed links, and one-time login tokens (create_auth_token).
Purpose = Literal["confirm", "reset", "login"]


@attrs.frozen
class CodeRecord:
    """A one-time code of a mailed link, kept by its SHA-256 (never the code itself)."""

    code_hash: str = attrs.field(repr=False)
    user_id: str
    purpose: Purpose
    created: float
    expires: float
    # Made by resend_confirmation: counts towards its rate limit (the first mail does not).
    counted: bool = False
    # How a confirmation mail was asked for (create's ``confirmation``), to send it again.
    mail: dict[str, Any] | None = None


class CodeState(enum.Enum):
    """What a one-time code is (or was) when it is presented."""

    VALID = "valid"
    USED = "used"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


@attrs.frozen
class UserChanges:
    """One update of a user, applied in one transaction. None leaves a value as it is."""

    username: str | None = None
    email: str | None = None
    password_hash: str | None = attrs.field(default=None, repr=False)
    # Merged into extra key by key (`merge_extra`).
    extra: dict[str, Any] | None = None
    group: str | None = None
    active: bool | None = None
    # Sessions to end with it: all, or all but ``keep`` (the token hash of the caller's).
    revoke: Literal["all", "others"] | None = None
    keep: str | None = attrs.field(default=None, repr=False)


@attrs.frozen
class LoginEvent:
    user_id: str
    at: float
    remote: str | None
    user_agent: str | None


FailureReason = Literal["wrong password", "unknown user", "locked"]


@attrs.frozen
class FailedLogin:
    """A failed login by username or email (never its password), kept for the lockout and
    for the administrator. ``identifier`` is the key of what was tried (`username_key`, or
    ``"@"`` and the `email_key`), whether or not a user has it."""

    scope: str
    identifier: str
    at: float
    remote: str | None
    user_agent: str | None
    reason: FailureReason


@attrs.frozen
class LockoutRule:
    """``threshold`` failed logins of one identifier within ``window`` seconds lock it for
    ``seconds`` (606)."""

    threshold: int
    window: float
    seconds: float


@attrs.frozen
class SessionLimit:
    """At most ``max_sessions`` live sessions per user (0: no limit); a login beyond them ends
    the oldest (``evict``) or is refused (`SessionLimitReached`). A session is live until it
    expires or has been idle ``idle_seconds`` (None: idleness does not count)."""

    max_sessions: int = 0
    evict: bool = False
    idle_seconds: float | None = None


class SessionLimitReached(ApiError):
    """608: the user has as many live sessions as `SessionLimit` allows (and no ``evict``)."""

    def __init__(self) -> None:
        super().__init__(Status.LOGIN_LIMIT, "multiple-login limit reached")


class Store(AdminStore, Protocol):
    """Persistence for the reference server. All methods are coroutines on the server's loop.
    The admin page's part (operators, the audit log, pages of users) is `AdminStore`."""

    async def open(self) -> None:
        """Connect and create or upgrade the schema."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise if the store cannot answer."""

    async def create_user(self, user: UserRecord, code: CodeRecord | None = None) -> None:
        """Insert a user (and the code of its confirmation link) in one transaction; raise
        `DuplicateUserError` if the username or email is taken."""

    async def get_user(self, scope: str, user_id: str) -> UserRecord | None: ...

    async def update_user(self, user_id: str, changes: UserChanges) -> UserRecord | None:
        """Apply ``changes`` and end the sessions they name; the user as it now is, or None
        if there is none. Raises `DuplicateUserError` or `ExtraTooLarge`, changing nothing.
        Setting ``active`` ends a wait for confirmation (its codes go); a new email expires the
        links mailed to the old one, and a new password or email the reset links."""

    async def delete_user(self, scope: str, user_id: str) -> bool:
        """Delete a user with its sessions, login events and codes; False if there was none."""

    async def set_confirmation(self, user_id: str, state: str) -> None:
        """Whether the confirmation mail went out: ``"pending"`` or ``"failed"``."""

    async def replace_code(self, code: CodeRecord, *, min_interval: float = 0) -> bool:
        """Keep ``code`` instead of the user's earlier codes of its purpose (whose links stop
        working). False, changing nothing, when ``code`` is counted and the last counted code
        of that user and purpose is younger than ``min_interval`` seconds."""

    async def confirmation_settings(self, user_id: str) -> dict[str, Any] | None:
        """The ``mail`` of the user's newest confirmation code, if any."""

    async def code_user(self, code_hash: str) -> UserRecord | None:
        """The user a code (of any state) was made for, if both still exist."""

    async def peek_code(self, code_hash: str, purpose: str, now: float) -> CodeState:
        """What the code is, without using it up."""

    async def use_code(
        self, code_hash: str, purpose: str, now: float, *, password_hash: str | None = None
    ) -> CodeState:
        """Use the code if it is valid, at most once however many try at the same time, and
        in the same transaction do what it is for: a confirmation activates its user; a reset
        sets ``password_hash`` and ends every session of the user. Returns the state the code
        was in (VALID: this call used it)."""

    async def user_exists(self, scope: str, username: str, email: str | None) -> bool: ...

    async def find_user(
        self, scope: str, *, username: str | None = None, email: str | None = None
    ) -> UserRecord | None:
        """The user of ``scope`` with this username or email (compared by their keys)."""

    async def set_password_hash(self, user_id: str, password_hash: str) -> None: ...

    async def set_active(self, user_id: str, active: bool) -> None: ...

    # The limit open_session applies unless given another (the server sets it from its
    # configuration).
    session_limit: SessionLimit

    async def open_session(
        self,
        session: SessionRecord,
        login: LoginEvent | None,
        *,
        limit: SessionLimit | None = None,
    ) -> None:
        """Keep a new session and, for an active user, its login event, in one transaction,
        within ``limit`` (default `session_limit`): the count of the user's sessions live at
        ``session.created``, and ending the oldest or raising `SessionLimitReached` (changing
        nothing), are part of that transaction, so concurrent logins cannot overshoot."""

    async def login_events(self, user_id: str) -> list[LoginEvent]: ...

    async def record_failure(self, failure: FailedLogin, rule: LockoutRule | None = None) -> bool:
        """Keep a failed login. With ``rule``, decide in the same transaction: True when its
        identifier is locked (the failure is kept with the reason ``"locked"``); else False,
        and the failure locks the identifier for ``rule.seconds`` if it is the
        ``rule.threshold``-th within ``rule.window`` seconds. After a lock, the count starts
        again from zero."""

    async def failures_since(self, scope: str, identifier: str, since: float) -> int:
        """The failed logins that count towards a lockout: at or after ``since``, after the
        last clear or lock, not refused as locked."""

    async def clear_failures(
        self, scope: str, identifier: str, *, unless_locked_at: float | None = None
    ) -> bool:
        """Reset the identifier's count and lift its lock (the failures stay on record). With
        ``unless_locked_at``: False, changing nothing, when the identifier is locked then (in
        the same transaction)."""

    async def locked_until(self, scope: str, identifier: str, now: float) -> float | None:
        """When the identifier's lock ends, if it is locked at ``now``."""

    async def failed_logins(
        self, scope: str, identifier: str | None = None, *, limit: int = 100
    ) -> list[FailedLogin]:
        """The newest failed logins of ``scope`` (of one identifier), newest first."""

    async def add_link(self, link: ProviderLink) -> None:
        """Keep a new link; raise `DuplicateLinkError` (changing nothing) when the user has
        that provider or the identity is linked to another user, LookupError when the user
        does not exist."""

    async def get_link(self, user_id: str, provider: str) -> ProviderLink | None: ...

    async def update_link(self, user_id: str, provider: str, **changes: Any) -> ProviderLink | None:
        """Set ``client_id``, ``access_token`` or ``access_token_expiry``; None when there is
        no such link; `DuplicateLinkError` when the new identity is another user's."""

    async def remove_link(self, user_id: str, provider: str) -> bool: ...

    async def find_link(
        self, scope: str, provider: str, client_id: str
    ) -> tuple[UserRecord, ProviderLink] | None:
        """The user an identity is linked to, with the link."""

    async def signup_with_link(
        self, user: UserRecord, link: ProviderLink
    ) -> tuple[UserRecord, ProviderLink]:
        """Create ``user`` linked to an identity, in one transaction; if the identity is
        linked already (a concurrent first login won), that user and link instead."""

    async def session_user(self, token_hash: str, now: float) -> str | None:
        """The user_id of a live session, or None."""

    async def session(self, token_hash: str) -> SessionRecord | None:
        """The session with this token hash, whatever its age."""

    async def session_owner(self, token_hash: str) -> tuple[SessionRecord, UserRecord] | None:
        """The session with this token hash, whatever its age, and its user, in one read
        (every call made with a session needs both)."""

    async def touch_session(self, token_hash: str, now: float) -> None:
        """Record that the session was used at ``now``."""

    async def revoke_sessions(self, user_id: str) -> None: ...

    async def end_session(self, token_hash: str) -> None:
        """Delete one session (logout)."""

    async def count_hit(self, key: str, window: float, now: float) -> tuple[float, int]:
        """Count one hit of a rate limit's key (`corelogin.server.limits.HitCounter`), where
        every server instance on this database sees it."""
