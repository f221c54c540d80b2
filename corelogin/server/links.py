"""Mailed links: confirmation of a new user's address, and password reset.

Their codes are 32 random bytes kept only as hashes, expire, and are used at most once however
many try at the same time (the store's `use_code`). ``/confirm`` uses its code on opening, as
Coronium's link does; ``/reset`` only on submitting the form, so that a mail scanner opening the
link does not spend it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from email.message import EmailMessage
from typing import Any, Final

from aiohttp import web

from corelogin.server.access import Caller
from corelogin.server.config import ServerConfig
from corelogin.server.connections import arrived
from corelogin.server.context import BACKGROUND, CONFIG, HASHER, LIMITS, MAILER, STORE
from corelogin.server.envelope import ok
from corelogin.server.mail import Mailer, MailError, message
from corelogin.server.mailtemplates import check_template, render
from corelogin.server.pages import page
from corelogin.server.policy import check_new_password
from corelogin.server.ratelimits import check_rate
from corelogin.server.store import CodeRecord, CodeState, UserRecord, email_key
from corelogin.server.tokens import hash_token, new_code
from corelogin.wire import PATHS, ApiError, Status, check_params

__all__ = ["HANDLERS", "ROUTES", "confirmation_mail", "send_confirmation"]

log = logging.getLogger("corelogin.server")

RESET_SUBJECT: Final = "Reset your password"
BAD_CODE: Final = "the code is invalid, expired or already used"


def require_mailer(app: web.Application) -> Mailer:
    """The server's mailer; 702 when it has none."""
    found = app[MAILER]
    if found is None:
        raise ApiError(
            Status.MAIL_NOT_CONFIGURED,
            "mail is not configured on this server (smtp_url or mail_outbox)",
        )
    return found


def _link(request: web.Request, config: ServerConfig, path: str, code: str) -> str:
    """The link to mail: under public_url, else this server's own address and the port it
    really listens on (never the Host header, which a client could point anywhere)."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    port = sockname[1] if isinstance(sockname, tuple) else None
    return config.link(f"{path}?code={code}", port)


def confirmation_mail(
    request: web.Request, user: UserRecord, settings: dict[str, Any], *, counted: bool = False
) -> tuple[CodeRecord, EmailMessage]:
    """A new confirmation code for ``user`` and the mail that carries its link, made from the
    ``confirmation`` params of create (kept with the code for resend). Raises for a template
    that cannot be used, before anything is stored."""
    config = request.app[CONFIG]
    require_mailer(request.app)  # 702 before anything else
    if user.email is None:
        raise ApiError(Status.MISSING, "email is required to send a confirmation")
    name = settings.get("email_tpl")
    check_template(config.templates_dir, name, "confirm_link")
    ttl = config.confirmation_ttl_seconds
    code, record = new_code(
        user.user_id, "confirm", time.time(), ttl, counted=counted, mail=settings
    )
    link = _link(request, config, PATHS["confirm"], code)
    body = render(config.templates_dir, name, "confirm_link", link, settings.get("tpl_keys"))
    try:
        mail = message(
            sender=settings["from_email"], to=user.email, subject=settings["subject"], body=body
        )
    except ValueError as exc:  # an address the mail cannot carry (two of them, non-ASCII)
        raise ApiError(Status.EMAIL_INVALID, str(exc)) from None
    return record, mail


async def send_confirmation(request: web.Request, user: UserRecord, mail: EmailMessage) -> str:
    """Send it; the user's confirmation becomes ``"pending"`` or ``"failed"`` accordingly."""
    try:
        await require_mailer(request.app).send(mail)
        state = "pending"
    except MailError as exc:
        log.warning("the confirmation mail of user %s was not sent: %s", user.user_id, exc)
        state = "failed"
    if state != user.confirmation:
        await request.app[STORE].set_confirmation(user.user_id, state)
    return state


async def resend_confirmation(
    request: web.Request, caller: Caller, params: dict[str, Any]
) -> web.Response:
    store = request.app[STORE]
    await check_rate(request, "resend_confirmation")
    await request.app[LIMITS][0].hit(store, request.remote or "")
    user = await store.get_user(caller.scope, params["user_id"])
    settings = None if user is None else await store.confirmation_settings(user.user_id)
    if user is None or user.confirmation is None or settings is None:
        raise ApiError(Status.PENDING_NOT_FOUND, "no user of that id awaits a confirmation")
    record, mail = confirmation_mail(request, user, settings, counted=True)
    interval = request.app[CONFIG].resend_interval_seconds
    if not await store.replace_code(record, min_interval=interval):
        raise ApiError(
            Status.TOO_MANY_REQUESTS,
            f"a confirmation was resent less than {interval} s ago",
            retry_after=interval,
        )
    if await send_confirmation(request, user, mail) == "failed":
        raise ApiError(Status.EMAIL_NOT_SENT, "the confirmation mail could not be sent")
    return ok(user.user_id)


async def confirm_page(request: web.Request) -> web.Response:
    """GET /confirm?code=…: confirms on opening (the link of Coronium's mail)."""
    code = request.query.get("code", "")
    state = await request.app[STORE].use_code(hash_token(code), "confirm", time.time())
    if state is CodeState.VALID:
        return page("Address confirmed", "Thank you: you can log in now.")
    return _spent(state)


# The page of a link whose code cannot be used: (status, title, text).
_SPENT: Final = {
    CodeState.USED: (409, "Link already used", "This link has been used already."),
    CodeState.EXPIRED: (410, "Link expired", "This link has expired: ask for a new one."),
    CodeState.UNKNOWN: (
        404,
        "Unknown link",
        "This link is not known here. Copy the whole link from the mail.",
    ),
}


def _spent(state: CodeState) -> web.Response:
    status, title, text = _SPENT[state]
    return page(title, text, status=status, error=True)


# -- password reset ------------------------------------------------------------------------


async def send_password_reset(
    request: web.Request, caller: Caller, params: dict[str, Any]
) -> web.Response:
    """True whether or not the address is known: the request does the same work either way
    (the limits, one lookup); the code and the mail are made in the background."""
    app = request.app
    require_mailer(app)
    await check_rate(request, "send_password_reset")
    by_address, by_email = app[LIMITS]
    await by_address.hit(app[STORE], request.remote or "")
    email = params["email"]
    await by_email.hit(app[STORE], f"{caller.scope}:{email_key(email)}")
    user = await app[STORE].find_user(caller.scope, email=email)
    if user is not None and user.email is not None:
        code, record = new_code(user.user_id, "reset", time.time(), app[CONFIG].reset_ttl_seconds)
        link = _link(request, app[CONFIG], PATHS["reset"], code)
        task = asyncio.create_task(_mail_reset(app, record, user.email, link))
        app[BACKGROUND].add(task)
        task.add_done_callback(app[BACKGROUND].discard)
    return ok(True)


async def _mail_reset(app: web.Application, record: CodeRecord, to: str, link: str) -> None:
    """In the background: whatever happens here, the answer was already True."""
    try:
        mail = message(
            sender=app[CONFIG].mail_from,
            to=to,
            subject=RESET_SUBJECT,
            body=render(None, None, "reset_link", link),
        )
        await app[STORE].replace_code(record)
        await require_mailer(app).send(mail)
    except (MailError, ValueError) as exc:
        log.warning("the password reset mail of user %s was not sent: %s", record.user_id, exc)
    except Exception:
        log.exception("the password reset of user %s failed", record.user_id)


async def _reset(request: web.Request, code: str, password: str) -> CodeState:
    """Set a new password with a reset code: the code is checked before the (costly) hash,
    and used up, with the password set and every session ended, in one transaction."""
    app = request.app
    store, code_hash = app[STORE], hash_token(code)
    state = await store.peek_code(code_hash, "reset", time.time())
    user = await store.code_user(code_hash) if state is CodeState.VALID else None
    if user is None:
        return state if state is not CodeState.VALID else CodeState.UNKNOWN
    await check_new_password(password, app[CONFIG], inputs=(user.username, user.email))
    password_hash = await app[HASHER].hash(password)
    return await store.use_code(code_hash, "reset", time.time(), password_hash=password_hash)


async def reset_password(
    request: web.Request, caller: Caller, params: dict[str, Any]
) -> web.Response:
    if await _reset(request, params["code"], params["password"]) is not CodeState.VALID:
        raise ApiError(Status.CODE_INVALID, BAD_CODE)
    return ok(True)


_RESET_TITLE: Final = "Choose a new password"


async def reset_page(request: web.Request) -> web.Response:
    """GET /reset?code=…: the form (the code is not used up by opening it)."""
    code = request.query.get("code", "")
    state = await request.app[STORE].peek_code(hash_token(code), "reset", time.time())
    if state is not CodeState.VALID:
        return _spent(state)
    return page(_RESET_TITLE, code=code)


_FORM_TYPES: Final = ("application/x-www-form-urlencoded", "multipart/form-data")


async def reset_form(request: web.Request) -> web.Response:
    """POST /reset: the form's answer."""
    if request.content_type not in _FORM_TYPES:
        return page("Not a form", "Send the form of the reset page.", status=415, error=True)
    try:
        form = await request.post()
    except ValueError:  # a multipart body without its boundary, and the like
        return page("Not a form", "The form could not be read.", status=400, error=True)
    arrived(request)
    code, password, again = (form.get(name) for name in ("code", "password", "again"))
    if not isinstance(code, str) or not code:
        return _spent(CodeState.UNKNOWN)
    if not isinstance(password, str) or password != again:
        return page(_RESET_TITLE, "The two passwords differ.", status=400, error=True, code=code)
    try:
        check_params("reset_password", {"code": code, "password": password})
        state = await _reset(request, code, password)
    except ApiError as exc:
        busy = exc.status == Status.TOO_MANY_REQUESTS
        answer = page(_RESET_TITLE, exc.message, status=429 if busy else 400, error=True, code=code)
        if exc.retry_after is not None:
            answer.headers["Retry-After"] = str(exc.retry_after)
        return answer
    if state is CodeState.VALID:
        return page("Password changed", "You can log in with the new password now.")
    return _spent(state)


HANDLERS: Final = {
    "resend_confirmation": resend_confirmation,
    "send_password_reset": send_password_reset,
    "reset_password": reset_password,
}

ROUTES: Final = [
    web.get(PATHS["confirm"], confirm_page),
    web.get(PATHS["reset"], reset_page),
    web.post(PATHS["reset"], reset_form),
]
