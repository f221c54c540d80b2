"""Lockout (606; DESIGN.md §4): failed logins by username or email, counted per (scope,
identifier) in the store, so that every server instance sees them, unknown identifiers alike.

``lockout_threshold`` failures within ``lockout_window_seconds`` lock the identifier for
``lockout_seconds``: those failures answer 603, every attempt after them 606, with the right
password or not, for a known identifier or not. The password is checked first either way (the
hasher runs once per attempt, so timing tells nothing), then the store decides the attempt in
one transaction: concurrent attempts are counted one after the other. A successful login
resets the count; the admin key's ``update`` with ``"active": true`` unlocks the user's
username and email. ``lockout_threshold = 0`` turns the lockout off (failures are still
recorded). Provider logins are not counted: they have no password to guess.
"""

from __future__ import annotations

import time
from typing import Final

from aiohttp import web

from corelogin.server.config import ServerConfig
from corelogin.server.context import CONFIG, STORE
from corelogin.server.store import Store, UserRecord, email_key, username_key
from corelogin.server.store.base import FailedLogin, FailureReason, LockoutRule
from corelogin.wire import ApiError, Status

__all__ = ["LOCKED", "failed", "identifier", "succeeded", "unlock"]

LOCKED: Final = "account locked after too many failed logins; try again later"
USER_AGENT_MAX: Final = 512


def identifier(username: str | None, email: str | None) -> str:
    """What a login tried, as the lockout counts it: the username's key, else ``"@"`` and the
    email's key."""
    if username:
        return username_key(username)
    if email:
        return "@" + email_key(email)
    raise ValueError("a username or an email is required")


def _rule(config: ServerConfig) -> LockoutRule | None:
    if config.lockout_threshold <= 0:
        return None
    return LockoutRule(
        config.lockout_threshold, config.lockout_window_seconds, config.lockout_seconds
    )


def _failure(request: web.Request, scope: str, who: str, reason: FailureReason) -> FailedLogin:
    agent = request.headers.get("User-Agent")
    return FailedLogin(
        scope=scope,
        identifier=who,
        at=time.time(),
        remote=request.remote,
        user_agent=None if agent is None else agent[:USER_AGENT_MAX],
        reason=reason,
    )


async def failed(request: web.Request, scope: str, who: str, reason: FailureReason) -> None:
    """Record a failed login of ``who``; 606 when the identifier is locked (the caller answers
    603 otherwise)."""
    store = request.app[STORE]
    if await store.record_failure(
        _failure(request, scope, who, reason), _rule(request.app[CONFIG])
    ):
        raise ApiError(Status.ACCOUNT_LOCKED, LOCKED)


async def succeeded(request: web.Request, scope: str, who: str) -> None:
    """The password was right: reset the count of ``who``, or 606 (recorded as a failed
    login) when the identifier is locked."""
    if _rule(request.app[CONFIG]) is None:
        return
    store, now = request.app[STORE], time.time()
    if not await store.clear_failures(scope, who, unless_locked_at=now):
        await store.record_failure(_failure(request, scope, who, "locked"))
        raise ApiError(Status.ACCOUNT_LOCKED, LOCKED)


async def unlock(store: Store, *users: UserRecord) -> None:
    """Lift the lockout of the usernames and emails of ``users`` (the same user before and
    after an update)."""
    keys = {(user.scope, identifier(user.username, None)) for user in users}
    keys |= {(user.scope, identifier(None, user.email)) for user in users if user.email}
    for scope, who in sorted(keys):
        await store.clear_failures(scope, who)
