"""The reference server's aiohttp application: built by `create_app`, routes in one table."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from corelogin.server import admin, links, oauth, sessions, users
from corelogin.server.calls import routes
from corelogin.server.config import ServerConfig
from corelogin.server.connections import SERVER_NAME
from corelogin.server.context import (
    BACKGROUND,
    CLOCK,
    CONFIG,
    HASHER,
    LIMITS,
    MAILER,
    PROVERS,
    RATE_LIMITS,
    STORE,
)
from corelogin.server.envelope import envelope_middleware
from corelogin.server.limits import RateLimit
from corelogin.server.logsafety import install as keep_secrets_out_of_logs
from corelogin.server.mail import Mailer
from corelogin.server.mailtemplates import templates
from corelogin.server.openapi import document
from corelogin.server.passwords import PasswordHasher
from corelogin.server.proof.policies import make_provers
from corelogin.server.proxies import proxy_middlewares
from corelogin.server.ratelimits import RateLimits
from corelogin.server.store import Store, open_store
from corelogin.server.store.base import SessionLimit
from corelogin.wire import MAX_BODY_BYTES, PATHS

__all__ = ["ROUTES", "create_app"]


async def health(request: web.Request) -> web.Response:
    await request.app[STORE].ping()
    return web.json_response({"result": "ok"})


async def openapi(request: web.Request) -> web.Response:
    """The document of this server: its own password minimum and templates."""
    config = request.app[CONFIG]
    return web.json_response(
        document(config.min_password_length, templates=templates(config.templates_dir))
    )


ROUTES = [
    web.get(PATHS["health"], health),
    web.get(PATHS["openapi"], openapi),
    *routes({**users.HANDLERS, **links.HANDLERS, **oauth.HANDLERS, **sessions.HANDLERS}),
    *links.ROUTES,
]


def create_app(
    config: ServerConfig,
    *,
    store: Store | None = None,
    hasher: PasswordHasher | None = None,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """Build the application. ``store`` and ``hasher`` default to ones made from ``config``;
    the application opens and closes whatever it holds. Whatever runs it, the log filters of
    `corelogin.server.logsafety` are installed (once per process). Raises ``ValueError`` (one
    line) for a mail setting that cannot work."""
    keep_secrets_out_of_logs()
    app = web.Application(
        client_max_size=MAX_BODY_BYTES,
        # The admin page's middleware runs inside the envelope's: it answers every failure
        # under /admin/ as an HTML page itself, so the envelope makes JSON of the API's only.
        middlewares=[
            *proxy_middlewares(config.trusted_proxies),
            envelope_middleware,
            admin.middleware,
        ],
    )
    app[CONFIG] = config
    app[STORE] = store or open_store(
        config.db,
        pool_min=config.db_pool_min,
        pool_max=config.db_pool_max,
        timeout=config.db_timeout_seconds,
    )
    app[STORE].session_limit = SessionLimit(
        config.max_sessions_per_user,
        evict=config.session_limit_policy == "evict_oldest",
        idle_seconds=config.session_idle_seconds,
    )
    app[HASHER] = hasher or PasswordHasher(
        workers=config.hash_workers,
        queue=config.hash_queue,
        per_account=config.hash_jobs_per_account,
        insecure_fast=config.insecure_fast_hash,
    )
    app[CLOCK] = clock  # sessions' lifetimes are judged by it (tests pass their own)
    app[MAILER] = Mailer.from_config(config)
    app[PROVERS] = make_provers(config.providers)
    app[BACKGROUND] = set()
    app[LIMITS] = (
        RateLimit(
            config.mails_per_address_per_minute,
            60,
            "mails asked for from this address",
            name="mails",
        ),
        RateLimit(
            1, config.reset_interval_seconds, "password resets for this address", name="reset"
        ),
    )
    app[RATE_LIMITS] = RateLimits(config.rate_limit_per_minute)
    app.cleanup_ctx.append(_resources)
    app.on_response_prepare.append(_server_header)
    app.add_routes(ROUTES)
    admin.setup(app)
    return app


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = SERVER_NAME


async def _resources(app: web.Application) -> AsyncIterator[None]:
    await app[STORE].open()
    try:
        yield
    finally:
        for task in app[BACKGROUND]:
            task.cancel()
        await asyncio.gather(*app[BACKGROUND], return_exceptions=True)
        await app[STORE].close()
        app[HASHER].close()
        for prover in app[PROVERS].values():
            await prover.close()
