"""Who makes a call about a user, and whether they may (DESIGN.md §2).

A call about a user carries that user's session (``Authorization: Bearer``) or the admin key
(``X-Corelogin-Admin-Key``). A session may act only on its own user: 610 otherwise, also for
ids that do not exist, so that nothing leaks. The admin key may act on any user of the scope.
"""

from __future__ import annotations

import hmac
import logging

import attrs
from aiohttp import web

from corelogin.server.context import CLOCK, CONFIG, STORE
from corelogin.server.store import UserRecord
from corelogin.server.tokens import hash_token
from corelogin.wire import ADMIN_KEY_HEADER, ApiError, Call, Status

__all__ = [
    "Caller",
    "found",
    "identify",
    "live_user",
    "not_disabled",
    "own_user",
    "session_hash",
    "target",
]

log = logging.getLogger("corelogin.server")

# A session's last use is written at most this often (a write per call would cost more than
# the idle limit it serves is worth), and at least twice per idle limit, so that a session in
# use never looks idle.
TOUCH_INTERVAL = 60.0

NOT_ALLOWED = "not allowed to act on this user"
NO_SESSION = "session missing, expired or revoked: log in again"


@attrs.frozen
class Caller:
    """The scope of a call, and the admin key or the session it came with."""

    scope: str
    admin: bool = False
    user_id: str | None = None
    session: str | None = attrs.field(default=None, repr=False)  # the token's hash
    # The session's user as it was read with the session (the call's own user, if any).
    user: UserRecord | None = attrs.field(default=None, repr=False)


async def identify(request: web.Request, call: Call, scope: str) -> Caller:
    """The caller of ``call``: 610 for a wrong admin key, 609 for a dead session, 610 when a
    call about a user comes with neither."""
    if call.access == "app":
        return Caller(scope)
    if call.access == "session":  # the session itself is what the call is about
        token_hash = session_hash(request)
        if token_hash is None:
            raise ApiError(Status.SESSION_INVALID, NO_SESSION)
        return _session_caller(scope, token_hash, await _live_session(request, token_hash))
    given = request.headers.get(ADMIN_KEY_HEADER)
    if given is not None:
        _check_admin_key(request, given)
        return Caller(scope, admin=True)
    if "Authorization" not in request.headers or call.access == "admin":
        raise ApiError(Status.NOT_ALLOWED, f"{NOT_ALLOWED}: log in first (or use the admin key)")
    token_hash = session_hash(request)
    if token_hash is None:
        raise ApiError(Status.SESSION_INVALID, NO_SESSION)
    return _session_caller(scope, token_hash, await _live_session(request, token_hash))


def session_hash(request: web.Request) -> str | None:
    """The hash of the ``Authorization: Bearer`` token, or None without a usable one."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return hash_token(token.strip())


async def live_user(request: web.Request, token_hash: str) -> str | None:
    """The user of a live session, or None (for calls that answer rather than refuse)."""
    try:
        return (await _live_session(request, token_hash)).user_id
    except ApiError:
        return None


def _check_admin_key(request: web.Request, given: str) -> None:
    """610 (logged, without the key) unless ``given`` is the server's admin key."""
    expected = request.app[CONFIG].admin_key
    if expected and hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), expected.encode()
    ):
        return
    log.warning("refused a wrong admin key from %s", request.remote)
    raise ApiError(Status.NOT_ALLOWED, "admin key wrong, or no admin key on this server")


def _session_caller(scope: str, token_hash: str, user: UserRecord) -> Caller:
    return Caller(scope, user_id=user.user_id, session=token_hash, user=user)


async def _live_session(request: web.Request, token_hash: str) -> UserRecord:
    """The user of a session that is neither revoked, too old nor idle too long (609)."""
    config, store = request.app[CONFIG], request.app[STORE]
    found = await store.session_owner(token_hash)
    now = request.app[CLOCK]()
    if found is None or found[0].expires <= now:
        raise ApiError(Status.SESSION_INVALID, NO_SESSION)
    session, user = found
    last_seen = session.last_seen or session.created
    if now - last_seen >= config.session_idle_seconds:
        raise ApiError(Status.SESSION_INVALID, NO_SESSION)
    if now - last_seen >= min(TOUCH_INTERVAL, config.session_idle_seconds / 2):
        await store.touch_session(token_hash, now)
    return user


async def target(request: web.Request, caller: Caller, user_id: str) -> UserRecord | None:
    """The user a call is about. A session gets 610 for any user but its own (and for its
    own once it no longer exists in this scope); the admin key gets None for an unknown id."""
    if not caller.admin and caller.user_id != user_id:
        raise ApiError(Status.NOT_ALLOWED, NOT_ALLOWED)
    if caller.admin:
        user = await request.app[STORE].get_user(caller.scope, user_id)
    else:
        user = own_user(caller)
    if user is None and not caller.admin:
        raise ApiError(Status.NOT_ALLOWED, NOT_ALLOWED)
    return user


def own_user(caller: Caller) -> UserRecord | None:
    """The user of the caller's session (read with it), if it is of the call's scope."""
    user = caller.user
    return user if user is not None and user.scope == caller.scope else None


def not_disabled(caller: Caller, user: UserRecord) -> None:
    """A user an administrator deactivated may still log in and read their record (seed 004),
    but not change or delete it with their own session (607)."""
    if not caller.admin and not user.active and user.confirmation is None:
        raise ApiError(Status.LOGIN_DISABLED, "this account was deactivated by an administrator")


def found(user: UserRecord | None) -> UserRecord:
    """The user `target` found; 604 for an id the admin key named that does not exist (a
    session got 610 from `target` already)."""
    if user is None:
        raise ApiError(Status.USER_NOT_FOUND, "user not found")
    return user
