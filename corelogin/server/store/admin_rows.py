"""What both SQL backends share for the admin page (`corelogin.server.store.admin_base`): the
statements whose conditions depend on what is asked (a page of users, the audit log), the
keyset cursor of pages of users, and a page or an audit entry from its rows.

Statements are written with ``$1``-style placeholders, as PostgreSQL reads them; SQLite reads
``$N`` as ``?N`` (`sqlite`), the same numbered parameter.

Pages of users are keyset pages: the cursor holds the sort key of the last user shown, and the
next page starts below it, so that a deep page costs what the first does (an index range, no
OFFSET) and a user created meanwhile does not shift the pages (ordered by ``created``, it goes
to the front, before the walk). Ordered by ``last_login``, users who never logged in (NULL) come
last: both backends read the non-NULL users and the NULL ones as two index ranges, joined by
UNION ALL, because no single keyset condition over a NULL column can seek in an index.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any, Final

from corelogin.server.store.admin_base import AuditEntry, UserPage, UserQuery, UserSummary
from corelogin.server.store.base import email_key, username_key
from corelogin.server.store.rows import USER_COLUMNS, Row, user_from_row

__all__ = [
    "AUDIT_COLUMNS",
    "audit_from_row",
    "audit_sql",
    "decode_cursor",
    "encode_cursor",
    "user_page",
    "user_page_sql",
]

AUDIT_COLUMNS: Final = "at, operator, action, scope, target, detail"

# A user of a page: the user's columns, then last_login (row[10]).
_PAGE_COLUMNS: Final = USER_COLUMNS + ", last_login"


class _Args:
    """The arguments of a statement being written: each call adds one and gives its
    placeholder."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


# -- the cursor ----------------------------------------------------------------------------


def encode_cursor(order: str, row: Row) -> str:
    """The ``next`` of a page whose last user is ``row``: its order, sort key and user_id as
    JSON, in unpadded URL-safe base64 (opaque to callers, safe in a URL)."""
    key = row[9] if order == "created" else row[10]
    text = json.dumps([order, key, row[0]], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode("ascii").rstrip("=")


def decode_cursor(query: UserQuery) -> tuple[int | float | None, str] | None:
    """(sort key, user_id) of ``query.after``, None on the first page. Raises ValueError when
    it is not a cursor of this order (mangled, or made by another order)."""
    if query.after is None:
        return None
    try:
        padded = query.after + "=" * (-len(query.after) % 4)
        raw = base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)
        order, key, user_id = json.loads(raw)
    except (ValueError, TypeError, binascii.Error):  # UnicodeError, JSONDecodeError among them
        raise ValueError("malformed cursor") from None
    if order != query.order or not isinstance(user_id, str) or not _is_key(order, key):
        raise ValueError("malformed cursor")
    return (None if key is None else float(key) if order == "last_login" else key), user_id


def _is_key(order: str, key: object) -> bool:
    """Whether ``key`` can be a sort key of ``order``: created an integer, last_login a finite
    number or NULL (JSON booleans are not numbers here)."""
    if isinstance(key, bool):
        return False
    if order == "created":
        return isinstance(key, int)
    return key is None or (isinstance(key, int | float) and math.isfinite(key))


# -- a page of users -----------------------------------------------------------------------


def user_page_sql(query: UserQuery) -> tuple[str, list[Any]]:
    """The statement of one page of ``query`` and its arguments. It asks for one user more
    than the page holds: that one only tells that there is a next page (`user_page`). Raises
    ValueError for a malformed cursor or a limit below 1."""
    if query.limit < 1:
        raise ValueError("limit must be at least 1")
    after = decode_cursor(query)
    arg = _Args()
    where = " AND ".join(_conditions(query, arg))
    if query.order == "created":
        if after is not None:
            where += f" AND (created, user_id) < ({arg(after[0])}, {arg(after[1])})"
        sql = (
            f"SELECT {_PAGE_COLUMNS} FROM users WHERE {where} "  # noqa: S608
            f"ORDER BY created DESC, user_id DESC LIMIT {arg(query.limit + 1)}"
        )
        return sql, arg.values
    limit = arg(query.limit + 1)
    never = f"{where} AND last_login IS NULL"
    if after is not None and after[0] is None:  # the walk is among those who never logged in
        never += f" AND user_id < {arg(after[1])}"
    # Ordered by last_login too (NULL for all), so that the planner sees the order of the index.
    parts = [
        f"SELECT * FROM (SELECT {_PAGE_COLUMNS}, 1 AS part FROM users WHERE {never} "  # noqa: S608
        f"ORDER BY last_login DESC, user_id DESC LIMIT {limit}) AS never"
    ]
    if after is None or after[0] is not None:
        seen = f"{where} AND last_login IS NOT NULL"
        if after is not None:
            seen += f" AND (last_login, user_id) < ({arg(after[0])}, {arg(after[1])})"
        parts.insert(
            0,
            f"SELECT * FROM (SELECT {_PAGE_COLUMNS}, 0 AS part FROM users WHERE {seen} "  # noqa: S608
            f"ORDER BY last_login DESC, user_id DESC LIMIT {limit}) AS seen",
        )
    sql = " UNION ALL ".join(parts) + (
        f" ORDER BY part, last_login DESC, user_id DESC LIMIT {limit}"
    )
    return sql, arg.values


def _conditions(query: UserQuery, arg: _Args) -> list[str]:
    """The WHERE conditions of the filters of ``query`` (its scope first: the indexes of the
    pages start with it)."""
    found = [f"scope = {arg(query.scope)}"]
    if query.group is not None:
        found.append(f"user_group = {arg(query.group)}")
    if query.active is not None:
        found.append(f"active = {arg(query.active)}")
    if query.pending is not None:
        found.append(f"confirmation IS {'NOT ' if query.pending else ''}NULL")
    if query.locked is not None:
        # The identifiers a login counts (corelogin.server.lockout.identifier).
        locked = (
            "EXISTS (SELECT 1 FROM lockouts l WHERE l.scope = users.scope "  # noqa: S608
            "AND l.identifier IN (users.username_key, '@' || users.email_key) "
            f"AND l.locked_until > {arg(float(query.now))})"
        )
        found.append(locked if query.locked else f"NOT {locked}")
    search = (query.search or "").strip()
    if search:
        found.append(
            f"(username_key LIKE {arg(_prefix(username_key(search)))} ESCAPE '\\' "
            f"OR email_key LIKE {arg(_prefix(email_key(search)))} ESCAPE '\\' "
            f"OR user_id = {arg(search)})"
        )
    return found


def _prefix(key: str) -> str:
    """A LIKE pattern of what starts with ``key``, its wildcards taken literally."""
    escaped = key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def user_page(query: UserQuery, rows: list[Row]) -> UserPage:
    """The page of the rows of `user_page_sql` (one more than the page when there is a
    next)."""
    shown = rows[: query.limit]
    users = [UserSummary(user_from_row(row), row[10]) for row in shown]
    more = len(rows) > query.limit
    return UserPage(users, encode_cursor(query.order, shown[-1]) if more else None)


# -- the audit log -------------------------------------------------------------------------


def audit_sql(scope: str | None, target: str | None, limit: int) -> tuple[str, list[Any]]:
    """The newest entries first (by id: the order they were written in), of one scope or one
    user if asked; each filter alone reads its index (scope, id) or (target, id)."""
    arg = _Args()
    conditions = []
    if scope is not None:
        conditions.append(f"scope = {arg(scope)}")
    if target is not None:
        conditions.append(f"target = {arg(target)}")
    where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
    sql = f"SELECT {AUDIT_COLUMNS} FROM audit_log {where}ORDER BY id DESC LIMIT {arg(limit)}"  # noqa: S608
    return sql, arg.values


def audit_from_row(row: Row) -> AuditEntry:
    return AuditEntry(
        at=row[0], operator=row[1], action=row[2], scope=row[3], target=row[4], detail=row[5]
    )
