"""``corelogin admin add|passwd|remove NAME``: the admin page's operators (issue 12).

There is no default account: the first operator is made here, on the server, by someone who can
reach its database (chosen as ``serve`` chooses it: --db, --config, CORELOGIN_DB). The password
is asked twice on the terminal, or read from ``CORELOGIN_ADMIN_PASSWORD`` for scripts (never a
flag: the process list would show it); it must pass the server's rules for new passwords, and
is stored as the server's argon2id hash. A new password and a removal end the operator's
sessions. Each command is recorded in the audit log.

Exit status: 0 done; 1 refused (a name taken or unknown, passwords that differ or are too weak);
2 when the database cannot be used.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import re
import sys
import time
from typing import Final

from corelogin.server.config import ServerConfig
from corelogin.server.passwords import PasswordHasher
from corelogin.server.policy import check_new_password
from corelogin.server.store import Store, StoreError, open_store
from corelogin.server.store.admin_base import AuditEntry, DuplicateOperatorError, Operator
from corelogin.wire import PASSWORD_MAX_BYTES, ApiError

__all__ = ["PASSWORD_VARIABLE", "run"]

PASSWORD_VARIABLE: Final = "CORELOGIN_ADMIN_PASSWORD"  # noqa: S105 (a variable's name)
# Who the audit log says acted: whoever ran the command on the server.
COMMAND_LINE: Final = "(command line)"
NAME: Final = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


class Refused(Exception):
    """The command cannot do what it was asked (exit 1); the message says why."""


def _password() -> str:
    given = os.environ.get(PASSWORD_VARIABLE)
    if given is not None:
        return given
    first = getpass.getpass("New password: ")
    if getpass.getpass("The same again: ") != first:
        raise Refused("the two passwords differ")
    return first


async def _new_hash(config: ServerConfig, name: str, password: str) -> str:
    if len(password.encode()) > PASSWORD_MAX_BYTES:
        raise Refused(f"the password is longer than {PASSWORD_MAX_BYTES} bytes")
    try:
        await check_new_password(password, config, inputs=(name,))
    except ApiError as exc:
        raise Refused(exc.message) from None
    hasher = PasswordHasher(workers=1)  # always the real parameters for an operator
    try:
        return await hasher.hash(password)
    finally:
        hasher.close()


async def _run(config: ServerConfig, action: str, name: str, password: str | None) -> str:
    """Do ``action``; what to print."""
    password_hash = "" if password is None else await _new_hash(config, name, password)
    store: Store = open_store(config.db, pool_min=1, pool_max=2, timeout=config.db_timeout_seconds)
    await store.open()
    try:
        if action == "add":
            try:
                await store.add_operator(Operator(name, password_hash, created=time.time()))
            except DuplicateOperatorError:
                raise Refused(f"an operator {name} exists already") from None
            done = f"operator {name} added"
        elif action == "passwd":
            if not await store.set_operator_password(name, password_hash):
                raise Refused(f"no operator {name}")
            done = f"the password of operator {name} changed (its sessions ended)"
        else:
            if not await store.remove_operator(name):
                raise Refused(f"no operator {name}")
            done = f"operator {name} removed (its sessions ended)"
        entry = AuditEntry(time.time(), COMMAND_LINE, f"operator_{action}", detail=name)
        await store.record_audit(entry)
        return done
    finally:
        await store.close()


def run(config: ServerConfig, action: str, name: str) -> int:
    """``corelogin admin ACTION NAME`` with the database of ``config``: the exit status."""
    if not NAME.fullmatch(name):
        sys.stderr.write(
            "corelogin admin: a name is 1 to 64 letters, digits, '_', '.', '@' or '-'\n"
        )
        return 1
    try:
        password = None if action == "remove" else _password()
        done = asyncio.run(_run(config, action, name, password))
    except Refused as exc:
        sys.stderr.write(f"corelogin admin {action}: {exc}\n")
        return 1
    except (StoreError, OSError, ValueError) as exc:
        sys.stderr.write(f"corelogin admin {action}: {exc}\n")
        return 2
    except (EOFError, KeyboardInterrupt):
        sys.stderr.write(f"corelogin admin {action}: no password given\n")
        return 1
    sys.stdout.write(done + "\n")
    return 0
