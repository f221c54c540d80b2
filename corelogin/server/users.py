"""User calls of the reference server: create, login, get, update, delete.

Each handler gets its call's parameters already checked (corelogin.wire) and its caller
already identified (corelogin.server.access); see corelogin.server.calls.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Final, Literal

import attrs
from aiohttp import web

from corelogin.server import lockout
from corelogin.server.access import Caller, found, not_disabled, target
from corelogin.server.context import CONFIG, HASHER, STORE
from corelogin.server.envelope import ok
from corelogin.server.links import confirmation_mail, send_confirmation
from corelogin.server.oauth import provider_login
from corelogin.server.policy import check_new_password, check_new_username
from corelogin.server.ratelimits import check_rate
from corelogin.server.sessions import open_session
from corelogin.server.store import (
    DuplicateUserError,
    ExtraTooLarge,
    UserChanges,
    UserRecord,
)
from corelogin.server.store.base import FailureReason
from corelogin.wire import ApiError, Status

__all__ = ["HANDLERS", "user_json"]

# One message for unknown users and wrong passwords, so that neither can be told apart.
INVALID_CREDENTIALS = "invalid username/email or password"
DUPLICATE = "user already exists"


def user_json(user: UserRecord) -> dict[str, Any]:
    return {
        "user_id": user.user_id,
        "username": user.username,
        "email": user.email,
        "scope": user.scope,
        "group": user.group,
        "extra": user.extra,
        "active": user.active,
        "confirmation": user.confirmation,
        "created": user.created,
    }


def _account(scope: str, who: str) -> str:
    """The key of an account's share of the hash queue (corelogin.server.passwords)."""
    return f"{scope}\0{who}"


async def create(request: web.Request, caller: Caller, params: dict[str, Any]) -> web.Response:
    await check_rate(request, "create")
    config, store = request.app[CONFIG], request.app[STORE]
    check_new_username(params["username"])
    await check_new_password(
        params["password"], config, inputs=(params["username"], params.get("email"))
    )
    settings = params.get("confirmation")
    user = UserRecord(
        user_id=str(uuid.uuid4()),
        scope=caller.scope,
        username=params["username"],
        email=params.get("email"),
        password_hash="",
        active=settings is None,
        confirmation=None if settings is None else "pending",
        group=params.get("group"),
        extra=params.get("extra"),
        created=int(time.time()),
    )
    # The mail is made (and its template checked) before anything is stored.
    code, mail = (None, None) if settings is None else confirmation_mail(request, user, settings)
    # The hash is made whether or not the name is taken, so that the answer's timing does not
    # tell which (a taken name would otherwise answer 30 times faster); the unique index
    # settles races.
    password_hash = await request.app[HASHER].hash(params["password"])
    if await store.user_exists(caller.scope, user.username, user.email):
        raise ApiError(Status.USER_EXISTS, DUPLICATE)
    user = attrs.evolve(user, password_hash=password_hash)
    try:
        await store.create_user(user, code)
    except DuplicateUserError:
        raise ApiError(Status.USER_EXISTS, DUPLICATE) from None
    answer = user_json(user)
    if mail is not None:
        answer["confirmation"] = await send_confirmation(request, user, mail)
    return ok(answer)


async def login(request: web.Request, caller: Caller, params: dict[str, Any]) -> web.Response:
    await check_rate(request, "login")
    if "provider" in params:
        return await provider_login(request, caller, params)
    store, hasher = request.app[STORE], request.app[HASHER]
    username, email = params.get("username"), params.get("email")
    user = await store.find_user(caller.scope, username=username, email=email)
    # Exactly one argon2 verification whether or not the user exists (DESIGN.md §4).
    password = params["password"]
    who = lockout.identifier(username, email)
    # A user a provider signed up has no password: checked like an unknown one.
    stored = None if user is None or not user.password_hash else user.password_hash
    # The lockout (606) is decided after the check, so that the hasher runs either way.
    if not await hasher.verify(stored, password, account=_account(caller.scope, who)):
        reason: FailureReason = "unknown user" if user is None else "wrong password"
        await lockout.failed(request, caller.scope, who, reason)
        raise ApiError(Status.INVALID_CREDENTIALS, INVALID_CREDENTIALS)
    assert user is not None
    await lockout.succeeded(request, caller.scope, who)
    if hasher.needs_rehash(user.password_hash):
        await store.set_password_hash(user.user_id, await hasher.hash(password))

    return await open_session(request, user)


async def get(request: web.Request, caller: Caller, params: dict[str, Any]) -> web.Response:
    return ok(user_json(found(await target(request, caller, params["user_id"]))))


_ADMIN_ONLY: Final = ("group", "active")
_NEED_CURRENT_PASSWORD: Final = ("password", "email")


async def update(request: web.Request, caller: Caller, params: dict[str, Any]) -> web.Response:
    """Apply ``update``. A session may not change group or active, and needs the current
    password for a new password or email; a new password ends the user's other sessions,
    deactivation all of them."""
    user = found(await target(request, caller, params["user_id"]))
    not_disabled(caller, user)
    changes: dict[str, Any] = params["update"]
    config, hasher = request.app[CONFIG], request.app[HASHER]
    if not caller.admin and any(name in changes for name in _ADMIN_ONLY):
        raise ApiError(
            Status.NOT_ALLOWED, "group and active can be changed with the admin key only"
        )
    if "username" in changes:
        check_new_username(changes["username"])
    password = changes.get("password")
    if password is not None:
        names = (changes.get("username", user.username), changes.get("email", user.email))
        await check_new_password(password, config, inputs=names)
    # A user a provider signed up has no password yet: their first needs none.
    has_password = bool(user.password_hash)
    if not caller.admin and has_password and any(n in changes for n in _NEED_CURRENT_PASSWORD):
        current = changes.get("current_password")
        if current is None:
            raise ApiError(
                Status.MISSING, "current_password is required to change the password or email"
            )
        account = _account(caller.scope, f"id:{user.user_id}")
        if not await hasher.verify(user.password_hash or None, current, account=account):
            raise ApiError(Status.INVALID_CREDENTIALS, "current_password is wrong")
    revoke: Literal["all", "others"] | None = None
    if changes.get("active") is False or (password is not None and caller.session is None):
        revoke = "all"
    elif password is not None:
        revoke = "others"
    try:
        updated = await request.app[STORE].update_user(
            user.user_id,
            UserChanges(
                username=changes.get("username"),
                email=changes.get("email"),
                password_hash=None if password is None else await hasher.hash(password),
                extra=changes.get("extra"),
                group=changes.get("group"),
                active=changes.get("active"),
                revoke=revoke,
                keep=caller.session,
            ),
        )
    except DuplicateUserError:
        raise ApiError(Status.USER_EXISTS, DUPLICATE) from None
    except ExtraTooLarge as exc:
        raise ApiError(Status.TOO_LONG, str(exc)) from None
    if changes.get("active") is True:  # the admin key unlocks (606) the username and email
        await lockout.unlock(request.app[STORE], user, updated or user)
    # None: deleted meanwhile (a session gets 610 from target, the admin key 604).
    return ok(user_json(found(updated or await target(request, caller, user.user_id))))


async def delete(request: web.Request, caller: Caller, params: dict[str, Any]) -> web.Response:
    """1, or 0 when the admin key names a user there is not (or no longer)."""
    user = await target(request, caller, params["user_id"])
    if user is None:
        return ok(0)
    not_disabled(caller, user)
    deleted = await request.app[STORE].delete_user(caller.scope, user.user_id)
    return ok(int(deleted))


HANDLERS: Final = {
    "create": create,
    "login": login,
    "get": get,
    "update": update,
    "delete": delete,
}
