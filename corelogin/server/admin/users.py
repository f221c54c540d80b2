"""The admin page's users (issue 12): the list of a scope, with search, filters, sorting and
keyset pagination (the store's `UserQuery`: page 1,000 costs what page 1 does), and the page of
one user.

A template gets only what it shows, as plain values: never a `UserRecord` (it holds the
password hash), a session's token hash or a provider's access token, so no template can show
them by mistake.
"""

from __future__ import annotations

import json
import time
from typing import Any, Final

from aiohttp import web

from corelogin.server import lockout
from corelogin.server.admin.auth import Signed, require
from corelogin.server.admin.messages import flash
from corelogin.server.admin.responses import PageError, checked_scope, render
from corelogin.server.context import CLOCK, CONFIG, STORE
from corelogin.server.store import SessionRecord, UserRecord
from corelogin.server.store.admin_base import UserQuery

__all__ = ["delete_page", "identifiers", "record", "user_page", "users_list"]

PAGE_SIZE: Final = 50
SEARCH_MAX_CHARS: Final = 320
LOGINS_SHOWN: Final = 20
FAILED_SHOWN: Final = 20
AUDIT_SHOWN: Final = 50
_CHOICES: Final = {"": None, "yes": True, "no": False}
_ORDERS: Final = ("created", "last_login")


def record(user: UserRecord) -> dict[str, Any]:
    """What the pages show of a user: everything but the password hash."""
    return {
        "user_id": user.user_id,
        "scope": user.scope,
        "username": user.username,
        "email": user.email,
        "group": user.group,
        "active": user.active,
        "confirmation": user.confirmation,
        "validated": user.active and user.confirmation is None,
        "created": user.created,
    }


def identifiers(user: UserRecord) -> list[tuple[str, str]]:
    """(what, identifier) of the user's username and email, as the lockout counts them."""
    found = [("username", lockout.identifier(user.username, None))]
    if user.email:
        found.append(("email", lockout.identifier(None, user.email)))
    return found


def _text(request: web.Request, name: str, max_chars: int) -> str:
    value = request.query.get(name, "").strip()
    if len(value) > max_chars:
        raise PageError(400, f"{name}: at most {max_chars} characters")
    return value


def _choice(request: web.Request, name: str) -> bool | None:
    value = request.query.get(name, "")
    if value not in _CHOICES:
        raise PageError(400, f"{name}: yes, no or nothing")
    return _CHOICES[value]


async def users_list(request: web.Request) -> web.Response:
    """GET /admin/users?scope=&q=&group=&active=&pending=&locked=&order=&after=."""
    signed = await require(request)
    scope = checked_scope(request.query.get("scope"))
    filters = {
        "q": _text(request, "q", SEARCH_MAX_CHARS),
        "group": _text(request, "group", 64),
        "active": request.query.get("active", ""),
        "pending": request.query.get("pending", ""),
        "locked": request.query.get("locked", ""),
        "order": request.query.get("order", "created"),
    }
    if filters["order"] not in _ORDERS:
        raise PageError(400, "order: created or last_login")
    query = UserQuery(
        scope=scope,
        search=filters["q"] or None,
        group=filters["group"] or None,
        active=_choice(request, "active"),
        pending=_choice(request, "pending"),
        locked=_choice(request, "locked"),
        now=time.time(),  # the lockout's clock (corelogin.server.lockout)
        order="last_login" if filters["order"] == "last_login" else "created",
        after=request.query.get("after") or None,
        limit=PAGE_SIZE,
    )
    try:
        page = await request.app[STORE].list_users(query)
    except ValueError:  # an ``after`` the store cannot read
        raise PageError(
            400, "This page link is not valid: start again from the first page."
        ) from None
    return render(
        "users.html",
        title="Users",
        signed=signed,
        scope=scope,
        flash=flash(request),
        filters=filters,
        first_page=query.after is None,
        users=[{**record(one.user), "last_login": one.last_login} for one in page.users],
        next=page.next,
    )


async def _user(request: web.Request, scope: str) -> UserRecord:
    user = await request.app[STORE].get_user(scope, request.match_info["user_id"])
    if user is None:
        raise PageError(404, f"No such user in the scope {scope!r}.")
    return user


def _session_rows(
    request: web.Request, signed: Signed, sessions: list[SessionRecord]
) -> list[dict[str, Any]]:
    config, now = request.app[CONFIG], request.app[CLOCK]()
    rows = []
    for session in sessions:
        last_seen = session.last_seen or session.created
        live = session.expires > now and now - last_seen < config.session_idle_seconds
        rows.append(
            {
                "id": signed.session_id(session.token_hash),
                "created": session.created,
                "last_seen": session.last_seen,
                "expires": session.expires,
                "live": live,
            }
        )
    return rows


async def user_page(request: web.Request) -> web.Response:
    """GET /admin/users/{user_id}?scope=NAME."""
    signed = await require(request)
    scope = checked_scope(request.query.get("scope"))
    user = await _user(request, scope)
    store, config = request.app[STORE], request.app[CONFIG]
    now = time.time()  # the lockout's clock
    locks, failures = [], []
    for what, who in identifiers(user):
        until = await store.locked_until(scope, who, now)
        locks.append({"what": what, "identifier": who, "until": until})
        failures += await store.failed_logins(scope, who, limit=FAILED_SHOWN)
    failures.sort(key=lambda failure: failure.at, reverse=True)
    links = []
    for name in sorted(config.providers):
        found = await store.get_link(user.user_id, name)
        if found is not None:
            links.append(
                {
                    "provider": found.provider,
                    "client_id": found.client_id,
                    "created": found.created,
                    "expiry": found.access_token_expiry,
                }
            )
    logins = (await store.login_events(user.user_id))[-LOGINS_SHOWN:]
    return render(
        "user.html",
        title=user.username,
        signed=signed,
        scope=scope,
        flash=flash(request),
        user=record(user),
        extra=None
        if user.extra is None
        else json.dumps(user.extra, indent=2, ensure_ascii=False, sort_keys=True),
        locks=locks,
        locked=any(lock["until"] is not None for lock in locks),
        links=links,
        sessions=_session_rows(request, signed, await store.user_sessions(user.user_id)),
        logins=list(reversed(logins)),
        failures=failures[:FAILED_SHOWN],
        audit=await store.audit_log(target=user.user_id, limit=AUDIT_SHOWN),
    )


async def delete_page(request: web.Request) -> web.Response:
    """GET /admin/users/{user_id}/delete?scope=NAME: the confirmation step of a deletion."""
    signed = await require(request)
    scope = checked_scope(request.query.get("scope"))
    user = await _user(request, scope)
    return render(
        "delete.html", title="Delete a user", signed=signed, scope=scope, user=record(user)
    )
