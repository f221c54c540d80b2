"""The ``corelogin`` command: ``serve`` runs the reference server, ``openapi`` prints its API."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from corelogin import __version__

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="corelogin", description=__doc__)
    parser.add_argument("--version", action="version", version=f"corelogin {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="run the reference server",
        description="Run the reference server. Every setting can also come from the "
        "environment (CORELOGIN_HOST, CORELOGIN_PORT, CORELOGIN_DB, CORELOGIN_KEY, and "
        "CORELOGIN_<FIELD> for every other field of ServerConfig) or from --config FILE, a "
        "TOML file whose keys are ServerConfig's field names. Flags win over the environment, "
        "which wins over the file.",
    )
    serve.add_argument("--config", metavar="FILE", help="a TOML file of ServerConfig fields")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 10001)")
    serve.add_argument("--db", help="database URL (default sqlite:///corelogin.sqlite3)")
    serve.add_argument("--key", help="the app key clients must send (prefer CORELOGIN_KEY)")
    serve.add_argument("--min-password-length", type=int, help="shortest new password (default 8)")
    serve.add_argument(
        "--hash-queue",
        type=int,
        help="password hashes that may wait for a thread before the server answers 829 "
        "(default 16 per hashing thread)",
    )
    serve.add_argument(
        "--insecure-fast-hash",
        action="store_true",
        default=None,
        help="cheap password hashes, for benchmarks only (never in production)",
    )
    serve.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    commands.add_parser("openapi", help="print the server's OpenAPI document")
    token = commands.add_parser(
        "token",
        help="print a one-time login token for a user",
        description='Print {"auth_token", "expires"} as JSON: a token the user\'s game logs '
        "in with once (users.login_with_auth_token), before it expires (auth_token_ttl_seconds). "
        "The database is found as serve finds it (--db, --config, CORELOGIN_DB).",
    )
    token.add_argument("user_id", help="the user's id")
    token.add_argument("--scope", default="default", help="the user's scope (default: default)")
    token.add_argument("--config", metavar="FILE", help="a TOML file of ServerConfig fields")
    token.add_argument("--db", help="database URL (default sqlite:///corelogin.sqlite3)")
    return parser


def password_in_url(url: str | None) -> bool:
    """Whether a database URL given as a flag carries a password, which would then show in
    the process list and the shell's history: PostgreSQL reads it from PGPASSWORD or
    ~/.pgpass instead."""
    if not url or "://" not in url:
        return False
    return urlsplit(url).password is not None


NO_PASSWORD_IN_URL = (
    "a database password does not belong on the command line (other users see it in the "
    "process list): set PGPASSWORD or use ~/.pgpass"
)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "openapi":
        from corelogin.server.openapi import dumps

        sys.stdout.write(dumps())
        return 0
    logging.basicConfig(
        level=getattr(args, "log_level", "WARNING").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        from corelogin.server.config import ServerConfig
        from corelogin.server.runner import serve_forever
    except ImportError as exc:  # the server extra is not installed
        sys.stderr.write(
            "the server needs the 'server' extra: pip install -e '.[server]' in a checkout "
            f"({exc})\n"
        )
        return 2
    if password_in_url(getattr(args, "db", None)):
        sys.stderr.write(f"corelogin {args.command}: {NO_PASSWORD_IN_URL}\n")
        return 2
    try:
        if args.command == "token":  # the app key is not needed to write to the database
            config = ServerConfig.from_env(file=args.config, db=args.db, app_key="(unused)")
        else:
            config = ServerConfig.from_env(
                file=args.config,
                host=args.host,
                port=args.port,
                db=args.db,
                app_key=args.key,
                min_password_length=args.min_password_length,
                hash_queue=args.hash_queue,
                insecure_fast_hash=args.insecure_fast_hash,
            )
    except ValueError as exc:
        sys.stderr.write(f"corelogin {args.command}: {exc}\n")
        return 2
    from corelogin.server.store import StoreError

    if args.command == "token":
        return _token(config, args.scope, args.user_id)
    try:
        asyncio.run(serve_forever(config))
    except (StoreError, OSError, ValueError) as exc:  # unusable database, port taken, bad URL
        sys.stderr.write(f"corelogin serve: {exc}\n")
        return 2
    return 0


def _token(config: Any, scope: str, user_id: str) -> int:
    """``corelogin token USER_ID``: the token of create_auth_token, printed as JSON."""
    from corelogin.server.sessions import issue_auth_token
    from corelogin.server.store import StoreError, open_store

    async def issue() -> dict[str, Any] | None:
        store = open_store(config.db)
        await store.open()
        try:
            if await store.get_user(scope, user_id) is None:
                return None
            return await issue_auth_token(store, config, user_id)
        finally:
            await store.close()

    try:
        token = asyncio.run(issue())
    except (StoreError, OSError, ValueError) as exc:
        sys.stderr.write(f"corelogin token: {exc}\n")
        return 2
    if token is None:
        sys.stderr.write(f"corelogin token: no user {user_id} in scope {scope!r}\n")
        return 1
    sys.stdout.write(json.dumps(token) + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
