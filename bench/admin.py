"""The admin page's list of users at 100,000 users (issue 12): the first page and a deep page
against an empty list, each the median time of a whole ``GET /admin/users`` (HTTP, the store's
keyset query, the template), measured alternately in the same run; and the deep page against
the first, which is what depth costs.

The users are written straight into the database (the API would hash 100,000 passwords), half
of them with a last login. The operator's session is opened in the store, as a sign-in would
(the browser tests sign in for real). A deep page is reached by walking the keyset cursors
through the store to about the middle of the list.

    python bench/admin.py [--db sqlite|postgresql] [--users 100000] [--requests 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from _load import PG_DSN_VARIABLE
from _load import database as schema_database

from corelogin.server import ServerConfig, start_server
from corelogin.server.store import open_store
from corelogin.server.store.admin_base import AdminSession, Operator, UserQuery
from corelogin.server.store.postgres_schema import TABLES
from corelogin.server.tokens import hash_token

SCOPE = "default"


def user_rows(count: int, now: float) -> list[tuple[Any, ...]]:
    """``count`` users in the columns of TABLES["users"], every other one logged in."""
    rows = []
    for i in range(count):
        name = f"player{i:06d}"
        rows.append(
            (
                f"u{i:07d}-{secrets.token_hex(4)}",
                SCOPE,
                name,
                name,
                f"{name}@example.com",
                f"{name}@example.com",
                "$argon2id$not-a-real-hash",
                True,
                None,
                "players" if i % 3 else "testers",
                None,
                int(now) - count + i,
                None if i % 2 else now - i,
            )
        )
    return rows


@asynccontextmanager
async def database(kind: str) -> AsyncIterator[str]:
    """A new database: a temporary SQLite file, or a PostgreSQL schema of its own
    (`_load.database`, dropped afterwards)."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'admin.sqlite3'}"
        return
    async with schema_database(kind, os.environ.get(PG_DSN_VARIABLE)) as url:
        assert url is not None
        yield url


async def fill(url: str, count: int) -> tuple[str, str]:
    """Write the users and an operator's session; (the session's token, a deep cursor)."""
    store: Any = open_store(url)
    await store.open()
    now = time.time()
    rows, columns = user_rows(count, now), TABLES["users"]
    try:
        if url.startswith("sqlite"):
            marks = ", ".join("?" * len(columns))
            await store.conn.executemany(
                f"INSERT INTO users ({', '.join(columns)}) VALUES ({marks})",  # noqa: S608
                rows,
            )
            await store.conn.commit()
        else:
            async with store.pool.acquire() as conn:
                await conn.copy_records_to_table("users", records=rows, columns=columns)
        await store.add_operator(Operator("bench", "$argon2id$unused", now))
        token = secrets.token_urlsafe(32)
        await store.open_admin_session(
            AdminSession(hash_token(token), "bench", now, now + 3600, now)
        )
        after = None
        for _ in range(count // 2 // 50):  # to the middle, 50 a page as the page shows them
            page = await store.list_users(UserQuery(SCOPE, after=after, limit=50))
            after = page.next
        assert after is not None
        return token, after
    finally:
        await store.close()


async def median_ms(http: aiohttp.ClientSession, url: str, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        async with http.get(url) as response:
            await response.read()
            assert response.status == 200, (url, response.status)
        times.append((time.perf_counter() - started) * 1000)
    return times


async def run(kind: str, count: int, requests: int) -> None:
    async with database(kind) as url:
        started = time.monotonic()
        token, deep = await fill(url, count)
        print(f"== {kind}: {count:,} users written in {time.monotonic() - started:.1f} s")
        config = ServerConfig(app_key="bench", db=url, port=0, rate_limit_per_minute=0)
        async with (
            await start_server(config) as server,
            aiohttp.ClientSession(cookies={"corelogin_admin": token}) as http,
        ):
            base = f"{server.url}/admin/users?scope="
            pages = {
                "empty list": base + "nobody",
                "first page": base + SCOPE,
                "deep page (middle)": f"{base}{SCOPE}&after={deep}",
                "first page by last login": f"{base}{SCOPE}&order=last_login",
            }
            times: dict[str, list[float]] = {name: [] for name in pages}
            for _ in range(3):  # alternating rounds: the machine's noise falls on all alike
                for name, page in pages.items():
                    times[name] += await median_ms(http, page, requests // 3)
    medians = {name: statistics.median(measured) for name, measured in times.items()}
    print(f"  {'page':<26} {'median':>9}  {'ratio to empty':>14}")
    for name, median in medians.items():
        print(f"  {name:<26} {median:7.2f} ms  {median / medians['empty list']:14.2f}")
    # What depth costs: the keyset query reads the same 51 rows at any depth.
    depth = medians["deep page (middle)"] / medians["first page"]
    print(f"  deep page / first page: {depth:.2f} (the rest is rendering 50 rows)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=60)
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    if "postgresql" in kinds and not os.environ.get(PG_DSN_VARIABLE):
        print(f"postgresql skipped: {PG_DSN_VARIABLE} is not set", file=sys.stderr)
        kinds.remove("postgresql")
    for kind in kinds:
        asyncio.run(run(kind, args.users, args.requests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
