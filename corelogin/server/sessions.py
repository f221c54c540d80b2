"""Opening a session: what every kind of login ends with (DESIGN.md §2, §4)."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from corelogin.server.context import CONFIG, STORE
from corelogin.server.envelope import ok
from corelogin.server.store import LoginEvent, ProviderLink, SessionRecord, UserRecord
from corelogin.server.tokens import hash_token, new_token

__all__ = ["login_json", "open_session", "provider_json"]

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
    now = time.time()
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
