"""Opening a session: what every kind of login ends with (DESIGN.md §2, §4)."""

from __future__ import annotations

import time
from typing import Any, Final

from aiohttp import web

from corelogin.server.access import Caller, found, live_user, own_user, session_hash, target
from corelogin.server.config import ServerConfig
from corelogin.server.context import CLOCK, CONFIG, STORE
from corelogin.server.envelope import ok
from corelogin.server.ratelimits import check_rate
from corelogin.server.store import (
    CodeState,
    LoginEvent,
    ProviderLink,
    SessionRecord,
    Store,
    UserRecord,
)
from corelogin.server.tokens import hash_token, new_code, new_token
from corelogin.wire import ApiError, Status

__all__ = ["HANDLERS", "issue_auth_token", "login_json", "open_session", "provider_json"]

USER_AGENT_MAX = 512


def provider_json(link: ProviderLink) -> dict[str, Any]:
    """The provider table of Coronium's OAuth API (its access token goes to the user or the
    admin key only, as every answer that holds one)."""
    expiry = link.access_token_expiry
    return {
        "provider": link.provider,
        "client_id": link.client_id,
        "access_token": link.access_token,
        "access_token_expiry": expiry,
        "access_token_expired": expiry is not None and expiry <= time.time(),
    }


def login_json(user: UserRecord, link: ProviderLink | None = None) -> dict[str, Any]:
    """The login object of seed 004, exactly its keys."""
    return {
        "active": user.active,
        "confirmation": user.confirmation,
        "email": user.email,
        "group": user.group,
        "extra": user.extra,
        "oauth": None if link is None else provider_json(link),
        "scope": user.scope,
        "user_id": user.user_id,
        "username": user.username,
        "validated": user.active and user.confirmation is None,
    }


async def open_session(
    request: web.Request, user: UserRecord, link: ProviderLink | None = None
) -> web.Response:
    """A new session for ``user`` and, for an active user, its login event (seed 004: an
    inactive user can log in, but no event is stored), in one transaction; the answer carries
    the token, of which the server keeps only the hash."""
    token = new_token()
    now = request.app[CLOCK]()
    expires = now + request.app[CONFIG].session_absolute_seconds
    session = SessionRecord(
        token_hash=hash_token(token), user_id=user.user_id, created=now, expires=expires
    )
    event = None
    if user.active:
        agent = request.headers.get("User-Agent")
        event = LoginEvent(
            user_id=user.user_id,
            at=now,
            remote=request.remote,
            user_agent=None if agent is None else agent[:USER_AGENT_MAX],
        )
    await request.app[STORE].open_session(session, event)
    return ok(login_json(user, link), session={"token": token, "expires": int(expires)})


# -- the calls of sessions -------------------------------------------------------------------


async def restore(request: web.Request, caller: Caller, params: dict[str, Any]) -> web.Response:
    """The login object of the session sent (a saved one): a login without the password."""
    user = own_user(caller)
    if user is None:  # the session is of another scope
        raise ApiError(Status.SESSION_INVALID, "session missing, expired or revoked")
    return ok(login_json(user))


async def is_valid_login(
    request: web.Request, caller: Caller, params: dict[str, Any]
) -> web.Response:
    token_hash = session_hash(request)
    user_id = None if token_hash is None else await live_user(request, token_hash)
    user = None if user_id is None else await request.app[STORE].get_user(caller.scope, user_id)
    return ok(user is not None)


async def logout(request: web.Request, caller: Caller, params: dict[str, Any]) -> web.Response:
    """True whether or not the session was still live: either way it is over."""
    token_hash = session_hash(request)
    if token_hash is not None:
        await request.app[STORE].end_session(token_hash)
    return ok(True)


async def issue_auth_token(store: Store, config: ServerConfig, user_id: str) -> dict[str, Any]:
    """A one-time login token for ``user_id`` (kept hashed, like a mailed code)."""
    token, record = new_code(user_id, "login", time.time(), config.auth_token_ttl_seconds)
    await store.replace_code(record)
    return {"auth_token": token, "expires": int(record.expires)}


async def create_auth_token(
    request: web.Request, caller: Caller, params: dict[str, Any]
) -> web.Response:
    user = found(await target(request, caller, params["user_id"]))
    return ok(await issue_auth_token(request.app[STORE], request.app[CONFIG], user.user_id))


async def login_with_auth_token(
    request: web.Request, caller: Caller, params: dict[str, Any]
) -> web.Response:
    """Used once, however many try at the same time; 615 otherwise."""
    await check_rate(request, "login")
    store, code_hash = request.app[STORE], hash_token(params["auth_token"])
    user = await store.code_user(code_hash)
    # A try from another scope must not use the token up.
    if user is None or user.scope != caller.scope:
        raise ApiError(Status.CODE_INVALID, BAD_AUTH_TOKEN)
    if await store.use_code(code_hash, "login", time.time()) is not CodeState.VALID:
        raise ApiError(Status.CODE_INVALID, BAD_AUTH_TOKEN)
    return await open_session(request, user)


BAD_AUTH_TOKEN: Final = "the auth token is invalid, expired or already used"  # noqa: S105


HANDLERS: Final = {
    "restore": restore,
    "is_valid_login": is_valid_login,
    "logout": logout,
    "create_auth_token": create_auth_token,
    "login_with_auth_token": login_with_auth_token,
}
