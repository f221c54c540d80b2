"""The server when PostgreSQL goes away under load: every request in flight gets a clean
503/810 envelope (never a hang, never a traceback), /health says the store is down while it
is, the pool reconnects by itself, and nothing is half-written."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import attrs
import pytest

from corelogin.server import RunningServer, ServerConfig, start_server
from tests.dbfaults import DatabaseLink
from tests.helpers import PASSWORD
from tests.instances import call, health

pytestmark = pytest.mark.timeout(90)

USERS = 20


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def config_on(server_config: ServerConfig, db: str) -> ServerConfig:
    return attrs.evolve(
        server_config,
        db=db,
        insecure_fast_hash=True,
        rate_limit_per_minute=0,
        db_timeout_seconds=5,
    )


async def make_users(http: aiohttp.ClientSession, url: str) -> None:
    for number in range(USERS):
        status, _ = await call(
            http, url, "create", {"username": f"u{number}", "password": PASSWORD}
        )
        assert status == 200


async def login_loop(
    http: aiohttp.ClientSession, url: str, until: float, answers: list[tuple[int, Any]]
) -> None:
    """Logins of the users in turn until ``until``: every (HTTP status, envelope)."""
    number = 0
    while time.monotonic() < until:
        body = {"username": f"u{number % USERS}", "password": PASSWORD}
        answers.append(await call(http, url, "login", body))
        number += 1


def assert_clean(answers: list[tuple[int, Any]]) -> None:
    """Each answer is a login or the database-unavailable envelope, nothing else."""
    kinds = {(status, envelope.get("status")) for status, envelope in answers}
    assert kinds <= {(200, None), (503, 810)}, kinds


def assert_no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    """corelogin logged no traceback and no error: a lost database is a warning. (asyncpg's
    pool logs its own reconnection attempts, with their exception.)"""
    unexpected = [
        r
        for r in caplog.records
        if r.name.startswith("corelogin") and (r.exc_info or r.levelno >= logging.ERROR)
    ]
    assert unexpected == []


async def assert_whole(db: str) -> None:
    """Every session has its login event, and no login event lacks its session."""
    conn = await asyncpg.connect(db)
    try:
        sessions = await conn.fetchval("SELECT count(*) FROM sessions")
        events = await conn.fetchval("SELECT count(*) FROM login_events")
        orphans = await conn.fetchval(
            "SELECT count(*) FROM sessions s WHERE NOT EXISTS (SELECT 1 FROM login_events e "
            "WHERE e.user_id = s.user_id AND e.at = s.created)"
        )
    finally:
        await conn.close()
    assert (sessions, orphans) == (events, 0)


async def test_killed_connections_give_clean_answers_and_the_pool_reconnects(
    pg_url: str,
    server_config: ServerConfig,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = f"corelogin_{secrets.token_hex(4)}"
    db = f"{pg_url}&application_name={name}"
    async with await start_server(config_on(server_config, db)) as server:
        await make_users(http, server.url)
        answers: list[tuple[int, Any]] = []
        until = time.monotonic() + 3
        loops = [login_loop(http, server.url, until, answers) for _ in range(8)]

        async def kill_twice() -> int:
            killed = 0
            for _ in range(2):
                await asyncio.sleep(0.8)
                killer = await asyncpg.connect(pg_url)
                try:
                    killed += len(
                        await killer.fetch(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = $1",
                            name,
                        )
                    )
                finally:
                    await killer.close()
            return killed

        killed, *_ = await asyncio.gather(kill_twice(), *loops)
        assert killed > 0
        assert_clean(answers)
        assert (503, 810) in {(s, e.get("status")) for s, e in answers}
        assert await eventually_logs_in(http, server)
    assert_no_tracebacks(caplog)
    await assert_whole(pg_url)


async def eventually_logs_in(http: aiohttp.ClientSession, server: RunningServer) -> bool:
    """Whether a login succeeds within a few seconds."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        status, _ = await call(http, server.url, "login", {"username": "u0", "password": PASSWORD})
        if status == 200:
            return True
        await asyncio.sleep(0.1)
    return False


async def test_health_reports_the_store_down_while_it_is_and_logins_resume_after(
    pg_url: str,
    server_config: ServerConfig,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    link = await DatabaseLink(pg_url).start()
    async with await start_server(config_on(server_config, link.url)) as server:
        await make_users(http, server.url)
        assert await health(http, server.url) == (200, {"result": "ok"})
        await link.cut()
        status, envelope = await health(http, server.url)
        assert (status, envelope["status"]) == (503, 810)
        started = time.monotonic()
        answers = await asyncio.gather(
            *(
                call(http, server.url, "login", {"username": f"u{n}", "password": PASSWORD})
                for n in range(10)
            )
        )
        assert time.monotonic() - started < 5  # refused, not hanging
        assert {(s, e["status"]) for s, e in answers} == {(503, 810)}
        await link.start()
        assert await eventually_logs_in(http, server)
        assert await health(http, server.url) == (200, {"result": "ok"})
    await link.cut()
    assert_no_tracebacks(caplog)
    await assert_whole(pg_url)
