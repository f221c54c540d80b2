"""Password hashing: argon2id off the event loop, in a pool bounded to the core count."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from corelogin.wire import ApiError, Status

__all__ = ["Busy", "PasswordHasher", "usable_cores"]

log = logging.getLogger("corelogin.server")

# DESIGN.md §4 (OWASP's argon2id minimum): 19 MiB, 2 passes, 1 lane.
MEMORY_KIB = 19456
TIME_COST = 2
PARALLELISM = 1

RETRY_AFTER_SECONDS = 1


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity, not the machine's core count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


class Busy(ApiError):
    """Too many passwords are waiting to be hashed: 829, with a Retry-After in seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            Status.TOO_MANY_REQUESTS,
            "the server is busy; try again shortly",
            retry_after=retry_after,
        )


class PasswordHasher:
    """Hashes and verifies passwords without blocking the loop.

    `verify` with no stored hash checks the password against a dummy hash, so an unknown user
    costs exactly what a wrong password costs (one argon2 verification).
    """

    def __init__(
        self,
        *,
        workers: int | None = None,
        queue: int | None = None,
        per_account: int = 4,
        insecure_fast: bool = False,
    ) -> None:
        if insecure_fast:
            log.warning(
                "INSECURE: fast password hashing is on (benchmarks only); "
                "hashes made now are weak and will be re-hashed at the next login"
            )
            self._argon = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
        else:
            self._argon = argon2.PasswordHasher(
                time_cost=TIME_COST,
                memory_cost=MEMORY_KIB,
                parallelism=PARALLELISM,
                type=argon2.Type.ID,
            )
        self.workers = workers or usable_cores()
        # Jobs that may wait for a thread; beyond them a request is refused at once (829), so
        # that a flood of logins cannot make everybody's wait grow without bound.
        self.queue = 16 * self.workers if queue is None else queue
        self._jobs = 0  # running and waiting; only touched on the event loop
        # Jobs one account may have at once: a flood aimed at one account then holds four
        # places in the queue, not all of them, and that account's owner still gets in.
        self.per_account = per_account
        self._by_account: Counter[str] = Counter()
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="corelogin-hash")
        self._dummy_hash = self._argon.hash(secrets.token_urlsafe(16))

    async def _run(self, fn: object, *args: str, account: str | None = None) -> object:
        if self._jobs >= self.workers + self.queue or (
            account is not None and self._by_account[account] >= self.per_account
        ):
            raise Busy(RETRY_AFTER_SECONDS)
        self._jobs += 1
        if account is not None:
            self._by_account[account] += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, fn, *args)  # type: ignore[arg-type]
        finally:
            self._jobs -= 1
            if account is not None:
                self._by_account[account] -= 1
                if not self._by_account[account]:
                    del self._by_account[account]

    async def hash(self, password: str) -> str:
        return str(await self._run(self._argon.hash, password))

    async def verify(
        self, stored_hash: str | None, password: str, *, account: str | None = None
    ) -> bool:
        """True if ``password`` matches; a None hash always runs one dummy check and fails.

        ``account`` names the account tried (known or not), for its share of the queue.
        """
        target = self._dummy_hash if stored_hash is None else stored_hash
        try:
            await self._run(self._argon.verify, target, password, account=account)
        except VerifyMismatchError:
            return False
        except (VerificationError, InvalidHashError):
            log.error("a stored password hash could not be checked (corrupt or unknown format)")
            return False
        return stored_hash is not None

    def needs_rehash(self, stored_hash: str) -> bool:
        """True when the hash was made with other parameters than the current ones."""
        try:
            return self._argon.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return True

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
