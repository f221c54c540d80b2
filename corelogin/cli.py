"""The ``corelogin`` command: ``serve`` runs the reference server, ``openapi`` prints its API,
``admin`` manages the operators of its admin page."""

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
    serve.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="server processes sharing the port (default 1; more than 1 needs PostgreSQL)",
    )
    serve.add_argument(
        "--trusted-proxy",
        action="append",
        dest="trusted_proxies",
        metavar="ADDR",
        help="a reverse proxy (address or network) whose X-Forwarded-For is believed; "
        "repeatable (replaces CORELOGIN_TRUSTED_PROXIES and the file's trusted_proxies)",
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
    _admin_parser(commands)
    migrate = commands.add_parser(
        "migrate",
        help="copy a SQLite database into PostgreSQL",
        description="Copy the users, provider links, sessions, mailed codes, login events, "
        "failed logins and lockouts of a SQLite database into an empty PostgreSQL database, "
        "in one transaction on the target, and check that every table's row count matches. "
        "The source's schema is first brought up to date (as serve would) and read in one "
        "snapshot. A target that already holds rows is refused unless --replace.",
    )
    migrate.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="URL",
        help="the SQLite database: sqlite:///PATH or a path (it must exist)",
    )
    migrate.add_argument(
        "--to",
        dest="target",
        required=True,
        metavar="URL",
        help="the PostgreSQL database: postgresql://USER@HOST/DB (the password from "
        "PGPASSWORD or ~/.pgpass); its schema is created if missing",
    )
    migrate.add_argument(
        "--replace",
        action="store_true",
        help="delete every row the target holds first (in the same transaction)",
    )
    return parser


def _admin_parser(commands: Any) -> None:
    """``corelogin admin add|passwd|remove NAME`` (corelogin.server.admin.cli)."""
    admin = commands.add_parser(
        "admin",
        help="add, re-password or remove an operator of the admin page (/admin/)",
        description="Manage the operators who sign in to the admin page at /admin/ (there is "
        "no default one). The password is asked twice, or read from "
        "CORELOGIN_ADMIN_PASSWORD. The database is found as serve finds it (--db, --config, "
        "CORELOGIN_DB).",
    )
    actions = admin.add_subparsers(dest="action", required=True)
    for action, text in (
        ("add", "make a new operator"),
        ("passwd", "set an operator's password (ending its sessions)"),
        ("remove", "remove an operator (ending its sessions)"),
    ):
        one = actions.add_parser(action, help=text, description=text[0].upper() + text[1:] + ".")
        one.add_argument("name", help="the operator's name")
        one.add_argument("--config", metavar="FILE", help="a TOML file of ServerConfig fields")
        one.add_argument("--db", help="database URL (default sqlite:///corelogin.sqlite3)")


def password_in_url(url: str | None) -> bool:
    """Whether a database URL given as a flag carries a password, which would then show in
    the process list and the shell's history: PostgreSQL reads it from PGPASSWORD or
    ~/.pgpass instead."""
    if not url or "://" not in url:
        return False
    return urlsplit(url).password is not None


NO_PASSWORD_IN_URL = (
    "a database password does not belong on the command line (other users see it in the "  # noqa: S105
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
    if args.command == "migrate":
        return _migrate(args.source, args.target, replace=args.replace)
    if password_in_url(getattr(args, "db", None)):
        sys.stderr.write(f"corelogin {args.command}: {NO_PASSWORD_IN_URL}\n")
        return 2
    try:
        if args.command in ("token", "admin"):  # no app key needed to use the database
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
                workers=args.workers,
                trusted_proxies=args.trusted_proxies,
            )
    except ValueError as exc:
        sys.stderr.write(f"corelogin {args.command}: {exc}\n")
        return 2
    from corelogin.server.store import StoreError

    if args.command == "token":
        return _token(config, args.scope, args.user_id)
    if args.command == "admin":
        from corelogin.server.admin.cli import run

        return run(config, args.action, args.name)
    from corelogin.server.workers import WorkerError, run_workers

    try:
        if config.workers > 1:  # from the flag, the environment or the file
            return run_workers(config)
        asyncio.run(serve_forever(config))
    # An unusable database, a port taken, a bad URL, SQLite with workers, a worker that could
    # not start: one line.
    except (StoreError, OSError, ValueError, WorkerError) as exc:
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


def _migrate(source: str, target: str, *, replace: bool) -> int:
    """``corelogin migrate --from SQLITE --to POSTGRESQL``: the copy, and its per-table counts
    on stdout. Exit 2 when it cannot start (bad URL, missing file, unreachable database), 1
    when it is refused or fails (the message says what became of the target)."""
    try:
        from corelogin.server.migrate import MigrationError, migrate
    except ImportError as exc:  # asyncpg: the postgres extra is not installed
        sys.stderr.write(
            "corelogin migrate needs the 'postgres' extra: pip install 'corelogin[postgres]' "
            f"({exc})\n"
        )
        return 2
    from corelogin.server.store import StoreError

    if password_in_url(source) or password_in_url(target):
        sys.stderr.write(f"corelogin migrate: {NO_PASSWORD_IN_URL}\n")
        return 2
    try:
        done = asyncio.run(migrate(source, target, replace=replace))
    except MigrationError as exc:
        sys.stderr.write(f"corelogin migrate: {exc}\n")
        return 1
    except (StoreError, OSError, ValueError) as exc:
        sys.stderr.write(f"corelogin migrate: {exc}\n")
        return 2
    sys.stdout.write(done.summary())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
