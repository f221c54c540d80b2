"""One parameter of a call (`Field`): its type, its size limits and the checks that hold for
it wherever it appears; the limits themselves; `NULL`."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, Final

import attrs

from corelogin.wire.status import ApiError, Status

# Unicode's control characters (category Cc): exactly C0, DEL and C1.
_CONTROL: Final = re.compile("[\x00-\x1f\x7f-\x9f]")

__all__ = [
    "CLIENT_ID_MAX_CHARS",
    "CODE_MAX_CHARS",
    "EMAIL_MAX_CHARS",
    "EXTRA_MAX_BYTES",
    "GROUP_MAX_CHARS",
    "NULL",
    "PASSWORD_MAX_BYTES",
    "PROVIDER_MAX_CHARS",
    "SCOPE_MAX_CHARS",
    "SENDER_PATTERN",
    "SUBJECT_MAX_CHARS",
    "TEMPLATE_NAME_MAX_CHARS",
    "TOKEN_MAX_BYTES",
    "UNIX_TIME_MAX",
    "USERNAME_MAX_CHARS",
    "USER_ID_MAX_CHARS",
    "Field",
    "check_fields",
]

USERNAME_MAX_CHARS: Final = 64
EMAIL_MAX_CHARS: Final = 254
PASSWORD_MAX_BYTES: Final = 1024
GROUP_MAX_CHARS: Final = 64
SCOPE_MAX_CHARS: Final = 64
EXTRA_MAX_BYTES: Final = 16 * 1024
USER_ID_MAX_CHARS: Final = 64
PROVIDER_MAX_CHARS: Final = 64
CLIENT_ID_MAX_CHARS: Final = 256
TOKEN_MAX_BYTES: Final = 8 * 1024
# Times (token expiries) are unix seconds no JSON reader loses: up to 2**53.
UNIX_TIME_MAX: Final = 2**53
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
        if self.kind is int and isinstance(value, float) and value.is_integer():
            value = int(value)  # JSON has numbers, not integers: 10.0 is 10
        if not isinstance(value, self.kind) or (isinstance(value, bool) and self.kind is not bool):
            kind = _KIND_NAMES.get(self.kind, "value")
            raise ApiError(Status.WRONG_TYPE, f"{self.name} must be a {kind}")
        if isinstance(value, int) and self.kind is int and not 0 <= value <= UNIX_TIME_MAX:
            raise ApiError(
                Status.WRONG_TYPE, f"{self.name} must be unix seconds from 0 to {UNIX_TIME_MAX}"
            )
        if isinstance(value, str):
            if value == "":
                raise ApiError(Status.EMPTY, f"{self.name} must not be empty")
            if self.printable and _CONTROL.search(value):
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
                return check_fields(value, self.fields)
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


_KIND_NAMES: Final[Mapping[type, str]] = {
    str: "string",
    dict: "table (dict)",
    bool: "boolean",
    int: "whole number",
}


def check_fields(params: Mapping[str, Any], fields: tuple[Field, ...]) -> dict[str, Any]:
    """The checked values of ``fields`` in ``params`` (804 for a required one not given)."""
    body: dict[str, Any] = {}
    for field in fields:
        value = params.get(field.name)  # None counts as not given (a Lua table has no nil)
        if value is None:
            if field.required:
                raise ApiError(Status.MISSING, f"{field.name} is required")
            continue
        body[field.name] = field.check(value)
    return body


def _check_email_shape(name: str, email: str) -> None:
    local, at, domain = email.rpartition("@")
    unprintable = any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in email)
    if not at or not local or "." not in domain.strip(".") or unprintable:
        raise ApiError(Status.EMAIL_INVALID, f"{name} is not a valid address")
