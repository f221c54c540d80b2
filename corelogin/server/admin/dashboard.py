"""The admin page's front page, ``/admin/``: the sign-in form when signed out, else the day of
one scope (issue 12): joins and logins today and over 30 days (a chart drawn on the server),
users awaiting confirmation, identifiers locked out, failed logins of the last hour, and the
operators' latest actions."""

from __future__ import annotations

import time
from typing import Final

from aiohttp import web

from corelogin.server.admin.auth import sign_in_page, signed_in
from corelogin.server.admin.chart import Series, bar_chart, last_days
from corelogin.server.admin.messages import flash
from corelogin.server.admin.responses import checked_scope, render
from corelogin.server.context import CLOCK, STORE

__all__ = ["home"]

DAYS: Final = 30
DAY_SECONDS: Final = 24 * 3600
HOUR_SECONDS: Final = 3600
LOCKED_SHOWN: Final = 50
AUDIT_SHOWN: Final = 20


async def home(request: web.Request) -> web.Response:
    """GET /admin/?scope=NAME."""
    signed = await signed_in(request)
    if signed is None:
        return sign_in_page(request, flash=flash(request))
    store, now = request.app[STORE], request.app[CLOCK]()
    scope = checked_scope(request.query.get("scope"))
    days = last_days(now, DAYS)
    since = now - now % DAY_SECONDS - (DAYS - 1) * DAY_SECONDS  # the first day's UTC midnight
    joins = {day.day: day.count for day in await store.joins_per_day(scope, since)}
    logins = {day.day: day.count for day in await store.logins_per_day(scope, since)}
    chart = bar_chart(
        days,
        [Series("joins", "joins", joins), Series("logins", "logins", logins)],
        label=f"Joins and logins per day, {days[0]} to {days[-1]}",
    )
    # The lockout's own times are the wall clock's (corelogin.server.lockout).
    locked = await store.locked_identifiers(scope, time.time())
    return render(
        "dashboard.html",
        title="Today",
        signed=signed,
        scope=scope,
        flash=flash(request),
        today=days[-1],
        joins_today=joins.get(days[-1], 0),
        logins_today=logins.get(days[-1], 0),
        joins_total=sum(joins.get(day, 0) for day in days),
        logins_total=sum(logins.get(day, 0) for day in days),
        chart=chart,
        days=[(day, joins.get(day, 0), logins.get(day, 0)) for day in reversed(days)],
        pending=await store.pending_count(scope),
        locked=locked[:LOCKED_SHOWN],
        locked_count=len(locked),
        failed_last_hour=await store.failed_count(scope, time.time() - HOUR_SECONDS),
        audit=await store.audit_log(limit=AUDIT_SHOWN),
    )
