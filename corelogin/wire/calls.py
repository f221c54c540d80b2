"""The calls of ``core.users`` (`CALLS`), the paths and headers they travel with, and the check
of a call's parameters (`check_params`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

import attrs

from corelogin.wire.fields import (
    CLIENT_ID_MAX_CHARS,
    CODE_MAX_CHARS,
    EMAIL_MAX_CHARS,
    EXTRA_MAX_BYTES,
    GROUP_MAX_CHARS,
    PASSWORD_MAX_BYTES,
    PROVIDER_MAX_CHARS,
    SCOPE_MAX_CHARS,
    SENDER_PATTERN,
    SUBJECT_MAX_CHARS,
    TEMPLATE_NAME_MAX_CHARS,
    TOKEN_MAX_BYTES,
    USER_ID_MAX_CHARS,
    USERNAME_MAX_CHARS,
    Field,
    check_fields,
)
from corelogin.wire.status import ApiError, Status

__all__ = [
    "ADMIN_KEY_HEADER",
    "APPLE",
    "APP_KEY_HEADER",
    "CALLS",
    "CREATE_FIELDS",
    "FACEBOOK",
    "GOOGLE",
    "LOGIN_FIELDS",
    "MAX_BODY_BYTES",
    "OPENUDID",
    "PATHS",
    "SCOPE",
    "Call",
    "check_params",
    "check_scope",
]

APP_KEY_HEADER: Final = "X-Corelogin-Key"
# Trusted back-end code only (DESIGN.md §2): may act on any user of the scope.
ADMIN_KEY_HEADER: Final = "X-Corelogin-Admin-Key"

# OAuth provider names (``corelogin.FACEBOOK`` ...).
FACEBOOK: Final = "facebook"
GOOGLE: Final = "google"
APPLE: Final = "apple"
OPENUDID: Final = "openudid"

# Largest request body the server reads; anything bigger is refused with 806 before parsing.
MAX_BODY_BYTES: Final = 64 * 1024

_USERNAME = Field("username", max_chars=USERNAME_MAX_CHARS)
_EMAIL = Field("email", max_chars=EMAIL_MAX_CHARS, address=True)
_PASSWORD = Field("password", max_bytes=PASSWORD_MAX_BYTES)
_NEW_USERNAME = attrs.evolve(_USERNAME, policy="new_username")
# No user has a control character in their name (the policy refuses them, 601), and a
# database may not be able to hold one (PostgreSQL text cannot hold NUL): refused at login.
_LOGIN_USERNAME = attrs.evolve(_USERNAME, printable=True)
_NEW_PASSWORD = attrs.evolve(_PASSWORD, policy="new_password")
_GROUP = Field("group", required=False, max_chars=GROUP_MAX_CHARS, printable=True)
_EXTRA = Field("extra", kind=dict, required=False, max_bytes=EXTRA_MAX_BYTES)
_USER_ID = Field("user_id", max_chars=USER_ID_MAX_CHARS, printable=True)
_CODE = Field("code", max_chars=CODE_MAX_CHARS, printable=True)
SCOPE: Final = Field("scope", max_chars=SCOPE_MAX_CHARS, printable=True)


def _optional(*fields: Field) -> tuple[Field, ...]:
    return tuple(attrs.evolve(field, required=False) for field in fields)


_CONFIRMATION = Field(
    "confirmation",
    kind=dict,
    required=False,
    fields=(
        # The app's own sender (noreply@mygame.example): plain ASCII, as every mail server
        # takes it in a From header.
        Field("from_email", max_chars=EMAIL_MAX_CHARS, address=True, pattern=SENDER_PATTERN),
        Field("subject", max_chars=SUBJECT_MAX_CHARS, printable=True),
        Field(
            "email_tpl",
            required=False,
            max_chars=TEMPLATE_NAME_MAX_CHARS,
            printable=True,
            policy="template",
        ),
        Field("tpl_keys", kind=dict, required=False, max_bytes=EXTRA_MAX_BYTES),
    ),
)
_UPDATE = Field(
    "update",
    kind=dict,
    fields=(
        *_optional(_NEW_USERNAME, _NEW_PASSWORD, _EMAIL),
        attrs.evolve(_EXTRA, nulls=True),
        _GROUP,
        Field("active", kind=bool, required=False),
        attrs.evolve(_PASSWORD, name="current_password", required=False),
    ),
)

# A provider's name: a key of the server's [providers.NAME] configuration.
_PROVIDER = Field(
    "provider", max_chars=PROVIDER_MAX_CHARS, printable=True, pattern=r"[A-Za-z0-9_.-]+"
)
_CLIENT_ID = Field("client_id", max_chars=CLIENT_ID_MAX_CHARS, printable=True)
_ACCESS_TOKEN = Field("access_token", required=False, max_bytes=TOKEN_MAX_BYTES, printable=True)
_ID_TOKEN = Field("id_token", required=False, max_bytes=TOKEN_MAX_BYTES, printable=True)
_EXPIRY = Field("access_token_expiry", kind=int, required=False)
_AUTH = Field("auth", kind=dict, fields=(_CLIENT_ID, _ACCESS_TOKEN, _EXPIRY, _ID_TOKEN))
_AUTH_UPDATE = Field(
    "update",
    kind=dict,
    fields=(attrs.evolve(_CLIENT_ID, required=False), _ACCESS_TOKEN, _EXPIRY, _ID_TOKEN),
)

_STAY = Field("stay_logged_in", kind=bool, required=False)
_AUTH_TOKEN = Field("auth_token", max_chars=CODE_MAX_CHARS, printable=True)

Access = Literal["app", "user", "admin", "session"]
Result = Literal[
    "User",
    "Login",
    "integer",
    "string",
    "boolean",
    "flag",
    "OAuth",
    "UserId",
    "Expired",
    "AuthToken",
]


@attrs.frozen
class Call:
    """One call of ``core.users``: the single declaration from which its parameter checks, its
    SDK method, its server route and its OpenAPI entry are made.

    ``access``: ``"app"`` needs the app key only; ``"user"`` also the session of the user it
    names (``user_id``) or the admin key; ``"admin"`` the admin key. ``codes``: the statuses
    it may answer besides those every call may (611, 801, 810).
    """

    name: str
    fields: tuple[Field, ...]
    result: Result
    summary: str
    codes: tuple[Status, ...]
    access: Access = "app"
    # Exactly one of these fields must be given (login: username or email).
    one_of: tuple[str, ...] = ()
    # (a, b): when field a is given, field b must be too (create: confirmation needs email).
    needs: tuple[tuple[str, str], ...] = ()
    path: str = attrs.field(init=False)

    @path.default
    def _path(self) -> str:
        return f"/v1/users/{self.name}"

    @property
    def lua_name(self) -> str:
        """Coronium's camelCase name (``resendConfirmation``)."""
        first, *rest = self.name.split("_")
        return first + "".join(word.title() for word in rest)


_SIZES = (Status.MISSING, Status.EMPTY, Status.TOO_LONG)
_USER_ACCESS = (Status.SESSION_INVALID, Status.NOT_ALLOWED, Status.USER_NOT_FOUND)
# Changes a deactivated user may not make with their own session.
_CHANGES = (*_USER_ACCESS, Status.LOGIN_DISABLED)

# Coronium's OAuth API: each about one user's link to one provider.
_OAUTH_CODES = (*_CHANGES, Status.PROVIDER_NOT_LINKED, Status.PROVIDER_NOT_ENABLED)
_OAUTH_CALLS: tuple[tuple[str, tuple[Field, ...], Result, str, tuple[Status, ...]], ...] = (
    (
        "add_auth_provider",
        (_AUTH,),
        "OAuth",
        "link a provider's identity to a user (with its proof, where the "
        "provider's policy can check one)",
        (Status.PROVIDER_LINKED, Status.PROVIDER_PROOF_REJECTED),
    ),
    ("get_auth_provider", (), "OAuth", "a user's link to a provider", ()),
    (
        "update_auth_provider",
        (_AUTH_UPDATE,),
        "OAuth",
        "change a user's link to a provider",
        (Status.PROVIDER_LINKED, Status.PROVIDER_PROOF_REJECTED),
    ),
    (
        "remove_auth_provider",
        (),
        "UserId",
        "unlink a provider from a user",
        (),
    ),
    (
        "access_token_expired",
        (),
        "Expired",
        "whether the linked access token has expired (by the server's clock)",
        (),
    ),
    (
        "update_token_expiry",
        (
            attrs.evolve(_EXPIRY, name="expiry", required=True),
            attrs.evolve(_ACCESS_TOKEN, name="token"),
        ),
        "OAuth",
        "renew the linked access token's expiry (and the token)",
        (),
    ),
)

CALLS: Final[Mapping[str, Call]] = {
    call.name: call
    for call in (
        Call(
            "create",
            (
                _NEW_USERNAME,
                _NEW_PASSWORD,
                attrs.evolve(_EMAIL, required=False),
                _GROUP,
                _EXTRA,
                _CONFIRMATION,
            ),
            "User",
            "register a user (inactive until confirmed, when confirmation is asked for)",
            (
                Status.USER_EXISTS,
                Status.USER_NOT_CREATED,
                Status.EMAIL_INVALID,
                Status.MAIL_NOT_CONFIGURED,
                *_SIZES,
                Status.TOO_MANY_REQUESTS,
            ),
            needs=(("confirmation", "email"),),
        ),
        Call(
            "login",
            (
                *_optional(_LOGIN_USERNAME, _EMAIL, _PASSWORD, _PROVIDER, _CLIENT_ID),
                _ACCESS_TOKEN,
                _ID_TOKEN,
                _STAY,
            ),
            "Login",
            "log in by username or email with the password, or through a linked provider "
            "with its proof",
            (
                Status.INVALID_CREDENTIALS,
                Status.ACCOUNT_LOCKED,
                Status.LOGIN_LIMIT,
                Status.PROVIDER_NOT_LINKED,
                Status.PROVIDER_PROOF_REJECTED,
                Status.PROVIDER_NOT_ENABLED,
                Status.EMAIL_INVALID,
                *_SIZES,
                Status.TOO_MANY_REQUESTS,
            ),
            one_of=("username", "email", "provider"),
            needs=(("username", "password"), ("email", "password"), ("provider", "client_id")),
        ),
        Call(
            "get",
            (_USER_ID,),
            "User",
            "a user's record",
            (*_USER_ACCESS, *_SIZES),
            access="user",
        ),
        Call(
            "update",
            (_USER_ID, _UPDATE),
            "User",
            "change a user; group and active need the admin key, a new password or email "
            "the current password",
            (
                *_CHANGES,
                Status.USER_EXISTS,
                Status.USER_NOT_CREATED,
                Status.INVALID_CREDENTIALS,
                Status.EMAIL_INVALID,
                *_SIZES,
                Status.TOO_MANY_REQUESTS,
            ),
            access="user",
        ),
        Call(
            "delete",
            (_USER_ID,),
            "integer",
            "delete a user: 1, or 0 when there was none (admin key)",
            (*_CHANGES, *_SIZES),
            access="user",
        ),
        Call(
            "resend_confirmation",
            (_USER_ID,),
            "string",
            "mail a new confirmation link (the old ones stop working)",
            (
                Status.PENDING_NOT_FOUND,
                Status.EMAIL_NOT_SENT,
                Status.MAIL_NOT_CONFIGURED,
                *_SIZES,
                Status.TOO_MANY_REQUESTS,
            ),
        ),
        Call(
            "send_password_reset",
            (attrs.evolve(_EMAIL),),
            "boolean",
            "mail a password reset link; the same answer whether or not the address is known",
            (Status.EMAIL_INVALID, Status.MAIL_NOT_CONFIGURED, *_SIZES, Status.TOO_MANY_REQUESTS),
        ),
        Call(
            "reset_password",
            (_CODE, _NEW_PASSWORD),
            "boolean",
            "set a new password with the code of a reset link (every session ends)",
            (Status.CODE_INVALID, Status.USER_NOT_CREATED, *_SIZES, Status.TOO_MANY_REQUESTS),
        ),
        *(
            Call(
                name,
                (_USER_ID, _PROVIDER, *fields),
                result,
                summary,
                (*_OAUTH_CODES, *codes, *_SIZES),
                access="user",
            )
            for name, fields, result, summary, codes in _OAUTH_CALLS
        ),
        Call(
            "login_with_auth_token",
            (_AUTH_TOKEN, _STAY),
            "Login",
            "log in with a one-time token made by create_auth_token",
            (Status.CODE_INVALID, Status.LOGIN_LIMIT, *_SIZES, Status.TOO_MANY_REQUESTS),
        ),
        Call(
            "create_auth_token",
            (_USER_ID,),
            "AuthToken",
            "a one-time login token for a user (admin key): {auth_token, expires}",
            (Status.NOT_ALLOWED, Status.USER_NOT_FOUND, *_SIZES),
            access="admin",
        ),
        Call(
            "restore",
            (),
            "Login",
            "the login object of the session sent (a saved one, on the next start)",
            (Status.SESSION_INVALID, *_SIZES),
            access="session",
        ),
        Call(
            "is_valid_login",
            (),
            "flag",
            "whether the session sent is live",
            _SIZES,
        ),
        Call(
            "logout",
            (),
            "boolean",
            "end the session sent (true also when it had ended already)",
            _SIZES,
        ),
    )
}

# Kept for the tests and benchmarks that name them.
CREATE_FIELDS: Final = CALLS["create"].fields
LOGIN_FIELDS: Final = CALLS["login"].fields

# Every path the server answers. Versioned so that a later wire change can live beside this one;
# /confirm and /reset are the pages behind the links in mail.
PATHS: Final[Mapping[str, str]] = {
    "health": "/health",
    "openapi": "/openapi.json",
    "confirm": "/confirm",
    "reset": "/reset",
    **{name: call.path for name, call in CALLS.items()},
}


def check_params(call: str, params: Any) -> dict[str, Any]:
    """Check the parameters of ``call`` and return the body to send (a new dict).

    Raises `ApiError` with 801 (wrong type), 804 (missing), 805 (empty), 806 (too long) or
    704 (malformed email). ``params`` itself is never modified.
    """
    spec = CALLS.get(call)
    if spec is None:
        raise ValueError(f"unknown call {call!r}")
    if not isinstance(params, Mapping):
        raise ApiError(Status.WRONG_TYPE, "params must be a table (a dict or other mapping)")
    if spec.one_of:  # (on every login: the messages are made only when needed)
        given = [name for name in spec.one_of if params.get(name) is not None]
        if len(given) != 1:
            names = f"{', '.join(spec.one_of[:-1])} or {spec.one_of[-1]}"
            if given:
                raise ApiError(Status.WRONG_TYPE, f"give one of {names}, not {' and '.join(given)}")
            raise ApiError(Status.MISSING, f"{names} is required")
    body = check_fields(params, spec.fields)
    for name, needed in spec.needs:
        if name in body and needed not in body:
            raise ApiError(Status.MISSING, f"{needed} is required with {name}")
    return body


def check_scope(scope: Any) -> str:
    """Check an application scope (sent with every call)."""
    return str(SCOPE.check(scope))
