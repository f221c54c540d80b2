"""The audit log of the admin page: who did what, when, to which user (issue 12).

Every action an operator takes is kept in the store (shown on the pages) and logged to the
``corelogin.server`` logger, by name, action and target only: never a password, a token or a
hash.
"""

from __future__ import annotations

import logging

from aiohttp import web

from corelogin.server.context import CLOCK, STORE
from corelogin.server.store.admin_base import AuditEntry

__all__ = ["audit"]

log = logging.getLogger("corelogin.server")


async def audit(
    request: web.Request,
    operator: str,
    action: str,
    *,
    scope: str | None = None,
    target: str | None = None,
    detail: str | None = None,
) -> None:
    """Record ``action`` of ``operator`` (on user ``target`` of ``scope``)."""
    entry = AuditEntry(
        at=request.app[CLOCK](),
        operator=operator,
        action=action,
        scope=scope,
        target=target,
        detail=detail,
    )
    await request.app[STORE].record_audit(entry)
    log.info(
        "admin: operator %s: %s%s%s",
        operator,
        action,
        "" if target is None else f" user {target} of scope {scope!r}",
        "" if detail is None else f" ({detail})",
    )
