"""User calls of the reference server: create and login."""

from __future__ import annotations

import hashlib
import secrets
import time
import unicodedata
import uuid
from typing import Any

from aiohttp import web

from corelogin.server.context import CONFIG, HASHER, STORE
from corelogin.server.envelope import ok, read_call
from corelogin.server.store import (
    DuplicateUserError,
    LoginEvent,
    SessionRecord,
    UserRecord,
    email_key,
    username_key,
)
from corelogin.wire import ApiError, Status, check_params

__all__ = ["create", "login"]

# One message for unknown users and wrong passwords, so that neither can be told apart.
INVALID_CREDENTIALS = "invalid username/email or password"
USER_AGENT_MAX = 512


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


def login_json(user: UserRecord) -> dict[str, Any]:
    """The login object of seed 004, exactly its keys."""
    return {
        "active": user.active,
        "confirmation": user.confirmation,
        "email": user.email,
        "group": user.group,
        "extra": user.extra,
        "oauth": None,
        "scope": user.scope,
        "user_id": user.user_id,
        "username": user.username,
        "validated": user.active and user.confirmation is None,
    }


def _check_new_username(username: str) -> None:
    if username != username.strip() or any(
        unicodedata.category(c).startswith("C") for c in username
    ):
        raise ApiError(
            Status.USER_NOT_CREATED,
            "username must not have control characters or spaces at either end",
        )


async def create(request: web.Request) -> web.Response:
    scope, body = await read_call(request)
    params = check_params("create", body)
    config, store = request.app[CONFIG], request.app[STORE]
    _check_new_username(params["username"])
    if len(params["password"]) < config.min_password_length:
        raise ApiError(
            Status.USER_NOT_CREATED,
            f"password must be at least {config.min_password_length} characters",
        )
    duplicate = ApiError(Status.USER_EXISTS, "user already exists")
    # The hash is made whether or not the name is taken, so that the answer's timing does not
    # tell which (a taken name would otherwise answer 30 times faster); the unique index
    # settles races.
    password_hash = await request.app[HASHER].hash(params["password"])
    if await store.user_exists(scope, params["username"], params.get("email")):
        raise duplicate
    user = UserRecord(
        user_id=str(uuid.uuid4()),
        scope=scope,
        username=params["username"],
        email=params.get("email"),
        password_hash=password_hash,
        active=True,
        confirmation=None,
        group=params.get("group"),
        extra=params.get("extra"),
        created=int(time.time()),
    )
    try:
        await store.create_user(user)
    except DuplicateUserError:
        raise duplicate from None
    return ok(user_json(user))


async def login(request: web.Request) -> web.Response:
    scope, body = await read_call(request)
    params = check_params("login", body)
    store, hasher = request.app[STORE], request.app[HASHER]
    username, email = params.get("username"), params.get("email")
    user = await store.find_user(scope, username=username, email=email)
    # Exactly one argon2 verification whether or not the user exists (DESIGN.md §4).
    password = params["password"]
    who = username_key(username) if username else "@" + email_key(params["email"])
    account = f"{scope}\0{who}"
    stored = None if user is None else user.password_hash
    if not await hasher.verify(stored, password, account=account):
        raise ApiError(Status.INVALID_CREDENTIALS, INVALID_CREDENTIALS)
    assert user is not None
    if hasher.needs_rehash(user.password_hash):
        await store.set_password_hash(user.user_id, await hasher.hash(password))

    config = request.app[CONFIG]
    token = secrets.token_urlsafe(32)
    now = time.time()
    expires = now + config.session_absolute_seconds
    session = SessionRecord(
        token_hash=hash_token(token), user_id=user.user_id, created=now, expires=expires
    )
    # Seed 004: an inactive user can log in, but no login event is stored.
    event = None
    if user.active:
        agent = request.headers.get("User-Agent")
        event = LoginEvent(
            user_id=user.user_id,
            at=now,
            remote=request.remote,
            user_agent=None if agent is None else agent[:USER_AGENT_MAX],
        )
    await store.open_session(session, event)
    return ok(login_json(user), session={"token": token, "expires": int(expires)})


def hash_token(token: str) -> str:
    """Sessions are stored by the SHA-256 of their token, never by the token."""
    return hashlib.sha256(token.encode()).hexdigest()
