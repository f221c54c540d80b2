"""Operators' sign-in, their cookie sessions, and the CSRF check of every form (issue 12;
DESIGN.md §4; OWASP's session management, authentication and CSRF cheat sheets).

- Sign-in checks the password with the server's argon2 hasher exactly once, whether or not the
  operator exists (a dummy hash otherwise), and answers one message for both. Failures count
  towards the lockout of logins (corelogin.server.lockout) under `OPERATOR_SCOPE`, which no game
  has; sign-ins per client address are rate limited on top.
- The session is 32 random bytes in a cookie; the store keeps only their SHA-256. The cookie is
  HttpOnly and SameSite=Strict; over HTTPS (``public_url`` https) it is Secure and named
  ``__Host-…`` (Path=/, no Domain: no other host can set or read it). Every sign-in opens a new
  session (and ends the one the browser had): no session fixation. A session ends after
  ``admin_idle_seconds`` unused or ``admin_absolute_seconds`` in all, judged by the server's
  clock, on sign-out, on a new password and when its operator is removed.
- CSRF: each form carries an HMAC-SHA256 of the cookie's token under a fixed label, so nothing
  more is stored and a page of another site, which cannot read the cookie, cannot make it. It
  is compared in constant time, and a POST's ``Origin`` (when sent) must be this server's. The
  sign-in form has a token of its own, from a second cookie made for it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Final

import attrs
from aiohttp import web

from corelogin.server import lockout
from corelogin.server.admin.audit import audit
from corelogin.server.admin.responses import PREFIX, PageError, redirect, render
from corelogin.server.config import ServerConfig
from corelogin.server.connections import arrived
from corelogin.server.context import CLOCK, CONFIG, HASHER, STORE
from corelogin.server.limits import RateLimit
from corelogin.server.store.admin_base import OPERATOR_SCOPE, AdminSession
from corelogin.server.store.base import FailureReason
from corelogin.server.tokens import hash_token, new_token
from corelogin.wire import PASSWORD_MAX_BYTES, ApiError, Status

__all__ = [
    "INVALID",
    "Signed",
    "check_form",
    "read_form",
    "require",
    "sign_in",
    "sign_in_page",
    "sign_out",
    "signed_in",
]

log = logging.getLogger("corelogin.server")

# One message for an unknown operator and a wrong password.
INVALID: Final = "Wrong name or password."
LOCKED: Final = "Too many failed sign-ins: this name is locked for a while."
EXPIRED_FORM: Final = (
    "This form has expired or did not come from this page: reload it and try again."
)

NAME_MAX_CHARS: Final = 64
# A session's last use is written at most this often (and at least twice per idle limit).
TOUCH_INTERVAL: Final = 60.0
# Sign-ins per client address per minute (the lockout guards each name on top).
SIGN_INS_PER_MINUTE: Final = 20
_SIGN_IN_LIMIT: Final = RateLimit(
    SIGN_INS_PER_MINUTE, 60, "sign-ins from this address", name="admin_sign_in"
)

_CSRF_LABEL: Final = b"corelogin admin csrf"
_SIGN_IN_LABEL: Final = b"corelogin admin sign-in"
_SESSION_ID_LABEL: Final = b"corelogin admin session id:"
_FORM_TYPES: Final = ("application/x-www-form-urlencoded", "multipart/form-data")


def _mac(key: str, label: bytes) -> str:
    return hmac.new(key.encode("utf-8", "surrogateescape"), label, hashlib.sha256).hexdigest()


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), expected.encode()
    )


@attrs.frozen
class Signed:
    """The operator a request comes from, with the raw token of their cookie (for the CSRF
    token and the opaque ids of users' sessions; never shown)."""

    operator: str
    token: str = attrs.field(repr=False)
    session: AdminSession

    @property
    def csrf(self) -> str:
        return _mac(self.token, _CSRF_LABEL)

    def session_id(self, token_hash: str) -> str:
        """An id of a user's session for the page (a revoke button): an HMAC of its hash under
        this operator's token, so the page never shows a token hash and no other session's
        page can name it."""
        return _mac(self.token, _SESSION_ID_LABEL + token_hash.encode())[:32]


@attrs.frozen
class _Cookies:
    session: str
    sign_in: str
    path: str
    secure: bool


def _cookies(config: ServerConfig) -> _Cookies:
    if (config.public_url or "").lower().startswith("https://"):
        return _Cookies("__Host-corelogin_admin", "__Host-corelogin_admin_sign_in", "/", True)
    return _Cookies("corelogin_admin", "corelogin_admin_sign_in", PREFIX, False)


def _set_cookie(response: web.StreamResponse, config: ServerConfig, name: str, value: str) -> None:
    cookies = _cookies(config)
    response.set_cookie(
        name, value, path=cookies.path, secure=cookies.secure, httponly=True, samesite="Strict"
    )


def _del_cookie(response: web.StreamResponse, config: ServerConfig, name: str) -> None:
    cookies = _cookies(config)
    response.del_cookie(
        name, path=cookies.path, secure=cookies.secure, httponly=True, samesite="Strict"
    )


# -- who is signed in ------------------------------------------------------------------------


async def signed_in(request: web.Request) -> Signed | None:
    """The operator of the request's session cookie, if the session is live; a session found
    too old or idle too long is ended."""
    config, store = request.app[CONFIG], request.app[STORE]
    token = request.cookies.get(_cookies(config).session)
    if not token:
        return None
    token_hash = hash_token(token)
    session = await store.admin_session(token_hash)
    if session is None:
        return None
    now = request.app[CLOCK]()
    if now >= session.expires or now - session.last_seen >= config.admin_idle_seconds:
        await store.end_admin_session(token_hash)
        log.info("admin: the session of operator %s expired", session.operator)
        return None
    if now - session.last_seen >= min(TOUCH_INTERVAL, config.admin_idle_seconds / 2):
        await store.touch_admin_session(token_hash, now)
    return Signed(session.operator, token, session)


async def require(request: web.Request) -> Signed:
    """The signed-in operator; otherwise a 303 to the sign-in form, which says the session
    ended if the browser had one (the exception is answered by the admin middleware)."""
    signed = await signed_in(request)
    if signed is None:
        had = _cookies(request.app[CONFIG]).session in request.cookies
        raise web.HTTPSeeOther(f"{PREFIX}?error=signed_out" if had else PREFIX)
    return signed


# -- forms -----------------------------------------------------------------------------------


async def read_form(request: web.Request) -> dict[str, str]:
    """The fields of a POSTed form (text fields only)."""
    if request.content_type not in _FORM_TYPES:
        raise PageError(415, "Send the page's form.")
    try:
        form = await request.post()
    except ValueError:  # a multipart body without its boundary, and the like
        raise PageError(400, "The form could not be read.") from None
    arrived(request)
    return {name: value for name, value in form.items() if isinstance(value, str)}


def _check_origin(request: web.Request) -> None:
    """403 for a POST that a browser says came from another site."""
    if request.headers.get("Sec-Fetch-Site", "same-origin") != "same-origin":
        raise PageError(403, EXPIRED_FORM)
    origin = request.headers.get("Origin")
    if origin is None:
        return
    allowed = {f"{request.scheme}://{request.host}"}
    public = request.app[CONFIG].public_url
    if public:
        scheme, _, rest = public.partition("://")
        allowed.add(f"{scheme.lower()}://{rest.split('/', 1)[0]}")
    if origin not in allowed:
        log.warning("admin: refused a form from origin %r (%s)", origin[:100], request.remote)
        raise PageError(403, EXPIRED_FORM)


def check_form(request: web.Request, form: dict[str, str], signed: Signed) -> None:
    """403, before anything is done, unless the form came from one of this operator's pages."""
    _check_origin(request)
    if not _same(form.get("csrf"), signed.csrf):
        log.warning(
            "admin: refused %s %s of %s without its CSRF token (%s)",
            request.method,
            request.path,
            signed.operator,
            request.remote,
        )
        raise PageError(403, EXPIRED_FORM)


# -- sign-in and sign-out --------------------------------------------------------------------


def sign_in_page(
    request: web.Request,
    *,
    status: int = 200,
    message: str | None = None,
    flash: dict[str, str] | None = None,
    name: str = "",
) -> web.Response:
    """The sign-in form, with its CSRF token (from the sign-in cookie, made if missing), and
    an error ``message`` or a ``flash`` of `messages`."""
    config = request.app[CONFIG]
    cookie_name = _cookies(config).sign_in
    token = request.cookies.get(cookie_name, "")
    fresh = len(token) < 32
    if fresh:
        token = new_token()
    if message is not None:
        flash = {"kind": "error", "text": message}
    response = render(
        "sign_in.html",
        status=status,
        title="Sign in",
        csrf=_mac(token, _SIGN_IN_LABEL),
        name=name,
        flash=flash,
    )
    if fresh:
        _set_cookie(response, config, cookie_name, token)
    return response


async def sign_in(request: web.Request) -> web.StreamResponse:
    """POST /admin/sign-in."""
    app = request.app
    config, store, hasher = app[CONFIG], app[STORE], app[HASHER]
    form = await read_form(request)
    _check_origin(request)
    cookies = _cookies(config)
    pre = request.cookies.get(cookies.sign_in)
    if not pre or not _same(form.get("csrf"), _mac(pre, _SIGN_IN_LABEL)):
        return sign_in_page(request, status=403, message=EXPIRED_FORM)
    if config.rate_limit_per_minute > 0:
        await _SIGN_IN_LIMIT.hit(store, request.remote or "")  # 429 past it
    name, password = form.get("name", ""), form.get("password", "")
    if not name or len(name) > NAME_MAX_CHARS or len(password.encode()) > PASSWORD_MAX_BYTES:
        return sign_in_page(request, status=401, message=INVALID)
    who = lockout.identifier(name, None)
    operator = await store.get_operator(name)
    stored = None if operator is None else operator.password_hash
    # One argon2 verification whether or not the operator exists (DESIGN.md §4).
    # Its share of the hash queue, apart from every game's users (no game's scope is empty).
    valid = await hasher.verify(stored, password, account=f"{OPERATOR_SCOPE}\0{who}")
    try:
        if not valid or operator is None:
            reason: FailureReason = "unknown user" if operator is None else "wrong password"
            await lockout.failed(request, OPERATOR_SCOPE, who, reason)
            log.info("admin: a sign-in as %r failed (%s)", name[:NAME_MAX_CHARS], request.remote)
            return sign_in_page(request, status=401, message=INVALID, name=name)
        await lockout.succeeded(request, OPERATOR_SCOPE, who)
    except ApiError as exc:
        if exc.status != Status.ACCOUNT_LOCKED:
            raise
        log.warning("admin: a sign-in as %r refused: locked (%s)", name, request.remote)
        return sign_in_page(request, status=423, message=LOCKED, name=name)
    if hasher.needs_rehash(operator.password_hash):  # ends the operator's other sessions
        await store.set_operator_password(operator.name, await hasher.hash(password))
    old = request.cookies.get(cookies.session)
    if old:  # a new session on every sign-in: a cookie planted before it is worth nothing
        await store.end_admin_session(hash_token(old))
    token, now = new_token(), app[CLOCK]()
    await store.open_admin_session(
        AdminSession(
            token_hash=hash_token(token),
            operator=operator.name,
            created=now,
            expires=now + config.admin_absolute_seconds,
            last_seen=now,
        )
    )
    await audit(request, operator.name, "sign_in", detail=request.remote)
    response = redirect(PREFIX)
    _set_cookie(response, config, cookies.session, token)
    _del_cookie(response, config, cookies.sign_in)
    return response


async def sign_out(request: web.Request) -> web.StreamResponse:
    """POST /admin/sign-out: the session ends in the store, and the cookie goes."""
    config = request.app[CONFIG]
    signed = await require(request)
    check_form(request, await read_form(request), signed)
    await request.app[STORE].end_admin_session(signed.session.token_hash)
    await audit(request, signed.operator, "sign_out")
    response = redirect(f"{PREFIX}?done=signed_out")
    _del_cookie(response, config, _cookies(config).session)
    return response
