"""What an operator can do to a user (issue 12): POST /admin/users/{user_id}/{action}.

Each action is a form of the user's page with the CSRF token (403 without it, before anything
is read or changed); it reuses what the API does for the same thing (the store's update with
its session revocation, the lockout's unlock, resend_confirmation), is recorded in the audit
log, and answers 303 back to the page with the outcome as a key of `messages` (no JavaScript,
and reloading does not post again).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

import attrs
from aiohttp import web

from corelogin.server import links, lockout
from corelogin.server.access import Caller
from corelogin.server.admin.audit import audit
from corelogin.server.admin.auth import Signed, check_form, read_form, require
from corelogin.server.admin.responses import (
    PREFIX,
    PageError,
    checked_scope,
    link,
    redirect,
    user_link,
    when,
)
from corelogin.server.context import STORE
from corelogin.server.store import UserChanges, UserRecord
from corelogin.wire import ApiError, Status, check_params

__all__ = ["ACTIONS", "act"]


class Failed(Exception):
    """The action did not happen; ``code`` is a key of `messages.ERRORS`."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@attrs.frozen
class Act:
    """One action's request: who asks, about which user, with which form."""

    request: web.Request
    signed: Signed
    user: UserRecord
    form: Mapping[str, str]


# An action does its work and returns the audit entry's detail (None: nothing to add), or
# raises `Failed`.
Action = Callable[[Act], Awaitable[str | None]]


async def activate(act: Act) -> str | None:
    """As the admin key's update with ``active: true``: ends a wait for confirmation and
    unlocks the username and email."""
    store = act.request.app[STORE]
    updated = await store.update_user(act.user.user_id, UserChanges(active=True))
    if updated is None:
        raise Failed("gone")
    await lockout.unlock(store, act.user, updated)
    return None


async def deactivate(act: Act) -> str | None:
    """Inactive users may still log in (seed 004: ``validated`` false); their sessions end."""
    changes = UserChanges(active=False, revoke="all")
    if await act.request.app[STORE].update_user(act.user.user_id, changes) is None:
        raise Failed("gone")
    return None


async def group(act: Act) -> str | None:
    value = act.form.get("group", "")
    try:  # the API's own rule for a group
        check_params("update", {"user_id": act.user.user_id, "update": {"group": value}})
    except ApiError:
        raise Failed("bad_group") from None
    changes = UserChanges(group=value)
    if await act.request.app[STORE].update_user(act.user.user_id, changes) is None:
        raise Failed("gone")
    return f"{act.user.group!r} -> {value!r}"


# resend_confirmation's failures, as keys of messages.ERRORS.
_RESEND_FAILURES: Final[Mapping[int, str]] = {
    Status.PENDING_NOT_FOUND: "not_pending",
    Status.MISSING: "not_pending",  # no email
    Status.TOO_MANY_REQUESTS: "resent_recently",
    Status.MAIL_NOT_CONFIGURED: "no_mail",
    Status.EMAIL_NOT_SENT: "mail_failed",
    Status.EMAIL_INVALID: "mail_failed",
}


async def resend(act: Act) -> str | None:
    """The API's resend_confirmation, as the admin key would call it (its limits apply)."""
    caller = Caller(act.user.scope, admin=True)
    try:
        await links.resend_confirmation(act.request, caller, {"user_id": act.user.user_id})
    except ApiError as exc:
        code = _RESEND_FAILURES.get(exc.status)
        if code is None:
            raise
        raise Failed(code) from None
    return None


async def unlock(act: Act) -> str | None:
    await lockout.unlock(act.request.app[STORE], act.user)
    return None


async def revoke_sessions(act: Act) -> str | None:
    await act.request.app[STORE].revoke_sessions(act.user.user_id)
    return None


async def revoke_session(act: Act) -> str | None:
    """One session, by the opaque id its row showed (`Signed.session_id`)."""
    store, given = act.request.app[STORE], act.form.get("session", "")
    for session in await store.user_sessions(act.user.user_id):
        expected = act.signed.session_id(session.token_hash)
        if hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode()):
            await store.end_session(session.token_hash)
            return f"the session opened {when(session.created)}"
    raise Failed("no_session")


async def delete(act: Act) -> str | None:
    """The POST of the confirmation page (GET …/delete); without its ``confirm`` field, back
    to that page."""
    if act.form.get("confirm") != "yes":
        raise web.HTTPSeeOther(user_link(act.user.user_id, act.user.scope, "delete"))
    if not await act.request.app[STORE].delete_user(act.user.scope, act.user.user_id):
        raise Failed("gone")
    return f"username {act.user.username!r}"


ACTIONS: Final[Mapping[str, Action]] = {
    "activate": activate,
    "deactivate": deactivate,
    "group": group,
    "resend": resend,
    "unlock": unlock,
    "revoke_sessions": revoke_sessions,
    "revoke_session": revoke_session,
    "delete": delete,
}


async def act(request: web.Request) -> web.StreamResponse:
    """POST /admin/users/{user_id}/{action} with the form's ``csrf`` and ``scope``."""
    action = ACTIONS.get(request.match_info["action"])
    if action is None:
        raise PageError(404, "There is no such action.")
    signed = await require(request)
    form = await read_form(request)
    check_form(request, form, signed)  # 403 before anything else
    scope = checked_scope(form.get("scope"))
    name, user_id = request.match_info["action"], request.match_info["user_id"]
    user = await request.app[STORE].get_user(scope, user_id)
    if user is None:
        raise PageError(404, f"No such user in the scope {scope!r}.")
    try:
        detail = await action(Act(request, signed, user, form))
    except Failed as failed:
        return redirect(user_link(user_id, scope, error=failed.code))
    await audit(request, signed.operator, name, scope=scope, target=user_id, detail=detail)
    if action is delete:
        return redirect(link(f"{PREFIX}users", scope=scope, done=name))
    return redirect(user_link(user_id, scope, done=name))
