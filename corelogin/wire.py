"""The wire contract shared by the SDK and the reference server.

Everything both sides must agree on lives here and nowhere else: status codes and their HTTP
statuses, paths, headers, size limits and the parameter checks. The client runs the same checks
before it sends anything (so bad input never costs a round trip) and the server runs them again
(so a client that skips them gets the same answer).
"""

from __future__ import annotations

import enum
import json
import math
import re
import unicodedata
from collections.abc import Mapping
from typing import Any, Final, Literal

import attrs

__all__ = [
    "ADMIN_KEY_HEADER",
    "APP_KEY_HEADER",
    "CALLS",
    "CREATE_FIELDS",
    "LOGIN_FIELDS",
    "MAX_BODY_BYTES",
    "NULL",
    "PATHS",
    "SCOPE",
    "ApiError",
    "Call",
    "Field",
    "Status",
    "check_params",
    "check_scope",
    "http_status_for",
]


class Status(enum.IntEnum):
    """Status codes of DESIGN.md §5 (Coronium numbering). Once shipped a code keeps its meaning."""

    USER_EXISTS = 600
    USER_NOT_CREATED = 601
    INVALID_CREDENTIALS = 603
    USER_NOT_FOUND = 604
    ACCOUNT_LOCKED = 606
    LOGIN_DISABLED = 607
    LOGIN_LIMIT = 608
    SESSION_INVALID = 609
    NOT_ALLOWED = 610
    BAD_APP_KEY = 611
    PENDING_NOT_FOUND = 614
    CODE_INVALID = 615
    PROVIDER_LINKED = 620
    PROVIDER_NOT_LINKED = 624
    PROVIDER_PROOF_REJECTED = 625
    EMAIL_NOT_SENT = 701
    MAIL_NOT_CONFIGURED = 702
    EMAIL_INVALID = 704
    INVALID_RESULT = 800
    WRONG_TYPE = 801
    MISSING = 804
    EMPTY = 805
    TOO_LONG = 806
    SERVER_ERROR = 810
    NETWORK_ERROR = 815
    TIMED_OUT = 816
    CANCELLED = 817
    TOO_MANY_REQUESTS = 829
    BAD_JSON = 830


_HTTP_STATUS: Final[Mapping[int, int]] = {
    Status.USER_EXISTS: 409,
    Status.USER_NOT_CREATED: 400,
    Status.INVALID_CREDENTIALS: 401,
    Status.USER_NOT_FOUND: 404,
    Status.ACCOUNT_LOCKED: 423,
    Status.LOGIN_DISABLED: 403,
    Status.LOGIN_LIMIT: 409,
    Status.SESSION_INVALID: 401,
    Status.NOT_ALLOWED: 403,
    Status.BAD_APP_KEY: 401,
    Status.PENDING_NOT_FOUND: 404,
    Status.CODE_INVALID: 400,
    Status.PROVIDER_LINKED: 409,
    Status.PROVIDER_NOT_LINKED: 404,
    Status.PROVIDER_PROOF_REJECTED: 401,
    Status.EMAIL_NOT_SENT: 502,
    Status.MAIL_NOT_CONFIGURED: 503,
    Status.EMAIL_INVALID: 400,
    Status.TOO_LONG: 413,
    Status.TOO_MANY_REQUESTS: 429,
    Status.SERVER_ERROR: 500,
    Status.INVALID_RESULT: 500,
}


def http_status_for(status: int) -> int:
    """The HTTP status that carries ``status`` on the wire (400 unless listed)."""
    return _HTTP_STATUS.get(status, 400)


class ApiError(Exception):
    """A failure with a corelogin status code and a message fit to show to a person."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        http_status: int | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.http_status = http_status or http_status_for(status)
        # Seconds to wait before trying again (829): the Retry-After header.
        self.retry_after = retry_after


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

USERNAME_MAX_CHARS: Final = 64
EMAIL_MAX_CHARS: Final = 254
PASSWORD_MAX_BYTES: Final = 1024
GROUP_MAX_CHARS: Final = 64
SCOPE_MAX_CHARS: Final = 64
EXTRA_MAX_BYTES: Final = 16 * 1024
USER_ID_MAX_CHARS: Final = 64
# An ASCII address of dot-atoms (RFC 5322 3.4.1), with a dot in its domain.
SENDER_PATTERN: Final = (
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+"
)
CODE_MAX_CHARS: Final = 128
SUBJECT_MAX_CHARS: Final = 200
TEMPLATE_NAME_MAX_CHARS: Final = 255


class _Null:
    """``core.users.NULL``: in ``update``, removes a key from ``extra`` (Coronium's ``core.NULL``;
    None does the same)."""

    _instance: _Null | None = None

    def __new__(cls) -> _Null:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NULL"


NULL: Final = _Null()


@attrs.frozen
class Field:
    """One parameter of a call: its type and size limit."""

    name: str
    kind: type = str
    required: bool = True
    max_chars: int | None = None
    max_bytes: int | None = None
    # Text that is shown and compared (scope, group, mail headers): no control characters.
    printable: bool = False
    # A mail address: its shape is checked too (704).
    address: bool = False
    # A table's own fields (a record such as ``update``): keys not listed are refused. Without
    # them a table is flat, as ``extra``.
    fields: tuple[Field, ...] | None = None
    # A flat table whose values may be None or `NULL` (``update.extra``: remove that key).
    nulls: bool = False
    # A regular expression the whole value must match (801; 704 for an address): plain enough
    # to read alike in Python and in the OpenAPI document's ECMA-262.
    pattern: str | None = None
    # A policy the server applies to new values ("new_username", "new_password"), which the
    # OpenAPI document describes.
    policy: str | None = None

    def check(self, value: Any) -> Any:
        """Return ``value`` if it is acceptable, else raise `ApiError` (801, 805 or 806)."""
        if not isinstance(value, self.kind) or (isinstance(value, bool) and self.kind is not bool):
            kind = _KIND_NAMES.get(self.kind, "value")
            raise ApiError(Status.WRONG_TYPE, f"{self.name} must be a {kind}")
        if isinstance(value, str):
            if value == "":
                raise ApiError(Status.EMPTY, f"{self.name} must not be empty")
            if self.printable and any(unicodedata.category(c) == "Cc" for c in value):
                raise ApiError(Status.WRONG_TYPE, f"{self.name} must not hold control characters")
            if self.max_chars is not None and len(value) > self.max_chars:
                self._too_long(f"{self.max_chars} characters")
            size = self._utf8_len(value)
            if self.max_bytes is not None and size > self.max_bytes:
                self._too_long(f"{self.max_bytes} bytes")
            if self.address:
                _check_email_shape(self.name, value)
            if self.pattern is not None and not re.fullmatch(self.pattern, value):
                status = Status.EMAIL_INVALID if self.address else Status.WRONG_TYPE
                raise ApiError(status, f"{self.name} is not of the form this server takes")
        if isinstance(value, dict):
            if self.fields is not None:
                unknown = sorted(set(value) - {field.name for field in self.fields}, key=str)
                if unknown:
                    raise ApiError(Status.WRONG_TYPE, f"{self.name} has no key {unknown[0]!r}")
                return _check_fields(value, self.fields)
            value = self._check_flat(value)
            size = self._utf8_len(json.dumps(value, ensure_ascii=False))
            if self.max_bytes is not None and size > self.max_bytes:
                self._too_long(f"{self.max_bytes} bytes")
        return value

    def _check_flat(self, table: dict[Any, Any]) -> dict[str, Any]:
        """A table is flat, as Coronium's ``extra``: string keys; string, finite number or
        boolean values. (Nothing nested can then be too deep, nor a number JSON cannot hold.)
        Returns a copy in which `NULL` is None."""
        copy: dict[str, Any] = {}
        for key, value in table.items():
            if isinstance(key, str) and self.nulls and (value is None or value is NULL):
                copy[key] = None
                continue
            if not isinstance(key, str) or not isinstance(value, str | int | float):
                raise ApiError(
                    Status.WRONG_TYPE,
                    f"{self.name} must be a flat table: string keys; string, number or "
                    "boolean values",
                )
            if isinstance(value, int | float) and not _finite(value):
                raise ApiError(Status.WRONG_TYPE, f"{self.name} numbers must be finite")
            copy[key] = value
        return copy

    def _too_long(self, limit: str) -> None:
        raise ApiError(Status.TOO_LONG, f"{self.name} is longer than {limit}")

    def _utf8_len(self, text: str) -> int:
        """Its size in UTF-8; text that has none (lone surrogates) is refused with 801."""
        try:
            return len(text.encode("utf-8"))
        except UnicodeEncodeError:
            raise ApiError(Status.WRONG_TYPE, f"{self.name} is not valid Unicode text") from None


def _finite(number: float) -> bool:
    """Finite as a double: what every JSON reader can hold (a 400-digit integer is not)."""
    try:
        return math.isfinite(float(number))
    except OverflowError:
        return False


_KIND_NAMES: Final[Mapping[type, str]] = {str: "string", dict: "table (dict)", bool: "boolean"}

_USERNAME = Field("username", max_chars=USERNAME_MAX_CHARS)
_EMAIL = Field("email", max_chars=EMAIL_MAX_CHARS, address=True)
_PASSWORD = Field("password", max_bytes=PASSWORD_MAX_BYTES)
_NEW_USERNAME = attrs.evolve(_USERNAME, policy="new_username")
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

Access = Literal["app", "user", "admin"]
Result = Literal["User", "Login", "integer", "string", "boolean"]


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

    @property
    def path(self) -> str:
        return f"/v1/users/{self.name}"

    @property
    def lua_name(self) -> str:
        """Coronium's camelCase name (``resendConfirmation``)."""
        first, *rest = self.name.split("_")
        return first + "".join(word.title() for word in rest)


_SIZES = (Status.MISSING, Status.EMPTY, Status.TOO_LONG)
_USER_ACCESS = (Status.SESSION_INVALID, Status.NOT_ALLOWED, Status.USER_NOT_FOUND)

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
        ),
        Call(
            "login",
            (*_optional(_USERNAME, _EMAIL), _PASSWORD),
            "Login",
            "log in by username or by email, with the password",
            (Status.INVALID_CREDENTIALS, Status.EMAIL_INVALID, *_SIZES, Status.TOO_MANY_REQUESTS),
            one_of=("username", "email"),
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
                *_USER_ACCESS,
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
            (*_USER_ACCESS, *_SIZES),
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


def _present(params: Mapping[str, Any], name: str) -> bool:
    return params.get(name) is not None


def _check_fields(params: Mapping[str, Any], fields: tuple[Field, ...]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for field in fields:
        if not _present(params, field.name):
            if field.required:
                raise ApiError(Status.MISSING, f"{field.name} is required")
            continue
        body[field.name] = field.check(params[field.name])
    return body


def _check_email_shape(name: str, email: str) -> None:
    local, at, domain = email.rpartition("@")
    unprintable = any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in email)
    if not at or not local or "." not in domain.strip(".") or unprintable:
        raise ApiError(Status.EMAIL_INVALID, f"{name} is not a valid address")


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
    if spec.one_of:
        given = [name for name in spec.one_of if _present(params, name)]
        if len(given) > 1:
            raise ApiError(Status.WRONG_TYPE, f"give {' or '.join(spec.one_of)}, not both")
        if not given:
            raise ApiError(Status.MISSING, f"{' or '.join(spec.one_of)} is required")
    return _check_fields(params, spec.fields)


def check_scope(scope: Any) -> str:
    """Check an application scope (sent with every call)."""
    return str(SCOPE.check(scope))
