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
import unicodedata
from collections.abc import Mapping
from typing import Any, Final

import attrs

__all__ = [
    "APP_KEY_HEADER",
    "CREATE_FIELDS",
    "LOGIN_FIELDS",
    "MAX_BODY_BYTES",
    "PATHS",
    "SCOPE",
    "ApiError",
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

    def __init__(self, status: int, message: str, *, http_status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.http_status = http_status or http_status_for(status)


# Paths, one per call. Versioned so that a later wire change can live beside this one.
PATHS: Final[Mapping[str, str]] = {
    "health": "/health",
    "openapi": "/openapi.json",
    "create": "/v1/users/create",
    "login": "/v1/users/login",
}

APP_KEY_HEADER: Final = "X-Corelogin-Key"

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


@attrs.frozen
class Field:
    """One parameter of a call: its type and size limit."""

    name: str
    kind: type = str
    required: bool = True
    max_chars: int | None = None
    max_bytes: int | None = None
    # Text that is shown and compared (scope, group): no control characters.
    printable: bool = False

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
        if isinstance(value, dict):
            self._check_flat(value)
            size = self._utf8_len(json.dumps(value, ensure_ascii=False))
            if self.max_bytes is not None and size > self.max_bytes:
                self._too_long(f"{self.max_bytes} bytes")
        return value

    def _check_flat(self, table: dict[Any, Any]) -> None:
        """A table is flat, as Coronium's ``extra``: string keys; string, finite number or
        boolean values. (Nothing nested can then be too deep, nor a number JSON cannot hold.)"""
        for key, value in table.items():
            if not isinstance(key, str) or not isinstance(value, str | int | float):
                raise ApiError(
                    Status.WRONG_TYPE,
                    f"{self.name} must be a flat table: string keys; string, number or "
                    "boolean values",
                )
            if isinstance(value, int | float) and not _finite(value):
                raise ApiError(Status.WRONG_TYPE, f"{self.name} numbers must be finite")

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
_EMAIL = Field("email", max_chars=EMAIL_MAX_CHARS)
_PASSWORD = Field("password", max_bytes=PASSWORD_MAX_BYTES)
SCOPE: Final = Field("scope", max_chars=SCOPE_MAX_CHARS, printable=True)

# The fields each call sends, in the order they are checked. Keys not listed are not sent.
CREATE_FIELDS: Final = (
    _USERNAME,
    _PASSWORD,
    attrs.evolve(_EMAIL, required=False),
    Field("group", required=False, max_chars=GROUP_MAX_CHARS, printable=True),
    Field("extra", kind=dict, required=False, max_bytes=EXTRA_MAX_BYTES),
)
# Login takes exactly one of username and email, and the password.
LOGIN_FIELDS: Final = (
    attrs.evolve(_USERNAME, required=False),
    attrs.evolve(_EMAIL, required=False),
    _PASSWORD,
)


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


def _check_email_shape(email: str) -> None:
    local, at, domain = email.rpartition("@")
    unprintable = any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in email)
    if not at or not local or "." not in domain.strip(".") or unprintable:
        raise ApiError(Status.EMAIL_INVALID, "email is not a valid address")


def check_params(call: str, params: Any) -> dict[str, Any]:
    """Check the parameters of ``call`` and return the body to send (a new dict).

    Raises `ApiError` with 801 (wrong type), 804 (missing), 805 (empty), 806 (too long) or
    704 (malformed email). ``params`` itself is never modified.
    """
    if not isinstance(params, Mapping):
        raise ApiError(Status.WRONG_TYPE, "params must be a table (a dict or other mapping)")
    if call == "login":
        has_username, has_email = _present(params, "username"), _present(params, "email")
        if has_username and has_email:
            raise ApiError(Status.WRONG_TYPE, "give username or email, not both")
        if not has_username and not has_email:
            raise ApiError(Status.MISSING, "username or email is required")
        body = _check_fields(params, LOGIN_FIELDS)
    elif call == "create":
        body = _check_fields(params, CREATE_FIELDS)
    else:
        raise ValueError(f"unknown call {call!r}")
    if "email" in body:
        _check_email_shape(body["email"])
    return body


def check_scope(scope: Any) -> str:
    """Check an application scope (sent with every call)."""
    return str(SCOPE.check(scope))
