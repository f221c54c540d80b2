"""Password hashing: argon2id off the event loop, in a pool bounded to the core count."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from concurrent.futures import ThreadPoolExecutor

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["PasswordHasher"]

log = logging.getLogger("corelogin.server")

# DESIGN.md §4 (OWASP's argon2id minimum): 19 MiB, 2 passes, 1 lane.
MEMORY_KIB = 19456
TIME_COST = 2
PARALLELISM = 1


class PasswordHasher:
    """Hashes and verifies passwords without blocking the loop.

    `verify` with no stored hash checks the password against a dummy hash, so an unknown user
    costs exactly what a wrong password costs (one argon2 verification).
    """

    def __init__(self, *, workers: int | None = None, insecure_fast: bool = False) -> None:
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
        self.workers = workers or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="corelogin-hash")
        self._dummy_hash = self._argon.hash(secrets.token_urlsafe(16))

    async def _run(self, fn: object, *args: str) -> object:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn, *args)  # type: ignore[arg-type]

    async def hash(self, password: str) -> str:
        return str(await self._run(self._argon.hash, password))

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """True if ``password`` matches; a None hash always runs one dummy check and fails."""
        target = self._dummy_hash if stored_hash is None else stored_hash
        try:
            await self._run(self._argon.verify, target, password)
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
