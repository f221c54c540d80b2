"""Status codes (DESIGN.md §5), the HTTP status that carries each, and `ApiError`."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

__all__ = ["ApiError", "Status", "http_status_for"]


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
    PROVIDER_NOT_ENABLED = 626
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
    Status.PROVIDER_NOT_ENABLED: 403,
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
