"""The wire contract shared by the SDK and the reference server.

Everything both sides must agree on lives here and nowhere else: status codes and their HTTP
statuses, paths, headers, size limits and the parameter checks. The client runs the same checks
before it sends anything (so bad input never costs a round trip) and the server runs them again
(so a client that skips them gets the same answer).

``status``: the codes and `ApiError`; ``fields``: `Field`, the limits, `NULL`; ``calls``: the
call table `CALLS` (from which the SDK's methods, the server's routes and the OpenAPI document
are made), paths, headers and `check_params`.
"""

from __future__ import annotations

from corelogin.wire.calls import (
    ADMIN_KEY_HEADER,
    APP_KEY_HEADER,
    APPLE,
    CALLS,
    CREATE_FIELDS,
    FACEBOOK,
    GOOGLE,
    LOGIN_FIELDS,
    MAX_BODY_BYTES,
    OPENUDID,
    PATHS,
    SCOPE,
    Call,
    check_params,
    check_scope,
)
from corelogin.wire.fields import (
    CODE_MAX_CHARS,
    EMAIL_MAX_CHARS,
    EXTRA_MAX_BYTES,
    GROUP_MAX_CHARS,
    NULL,
    PASSWORD_MAX_BYTES,
    SCOPE_MAX_CHARS,
    SENDER_PATTERN,
    SUBJECT_MAX_CHARS,
    TEMPLATE_NAME_MAX_CHARS,
    TOKEN_MAX_BYTES,
    UNIX_TIME_MAX,
    USER_ID_MAX_CHARS,
    USERNAME_MAX_CHARS,
    Field,
)
from corelogin.wire.status import ApiError, Status, http_status_for

__all__ = [
    "ADMIN_KEY_HEADER",
    "APPLE",
    "APP_KEY_HEADER",
    "CALLS",
    "CODE_MAX_CHARS",
    "CREATE_FIELDS",
    "EMAIL_MAX_CHARS",
    "EXTRA_MAX_BYTES",
    "FACEBOOK",
    "GOOGLE",
    "GROUP_MAX_CHARS",
    "LOGIN_FIELDS",
    "MAX_BODY_BYTES",
    "NULL",
    "OPENUDID",
    "PASSWORD_MAX_BYTES",
    "PATHS",
    "SCOPE",
    "SCOPE_MAX_CHARS",
    "SENDER_PATTERN",
    "SUBJECT_MAX_CHARS",
    "TEMPLATE_NAME_MAX_CHARS",
    "TOKEN_MAX_BYTES",
    "UNIX_TIME_MAX",
    "USERNAME_MAX_CHARS",
    "USER_ID_MAX_CHARS",
    "ApiError",
    "Call",
    "Field",
    "Status",
    "check_params",
    "check_scope",
    "http_status_for",
]
