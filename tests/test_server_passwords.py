"""Password hashing: argon2id with the parameters of DESIGN.md §4, off the event loop."""

from __future__ import annotations

import asyncio
import logging
import os
import threading

import argon2
import pytest

from corelogin.server.passwords import Busy, PasswordHasher
from corelogin.wire import Status


async def test_hashes_are_argon2id_with_the_owasp_parameters() -> None:
    hasher = PasswordHasher(workers=1)
    try:
        stored = await hasher.hash("correct horse battery")
    finally:
        hasher.close()
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert argon2.PasswordHasher().verify(stored, "correct horse battery")


async def test_verify_accepts_only_the_right_password() -> None:
    hasher = PasswordHasher(workers=1)
    try:
        stored = await hasher.hash("pässwörd ☃")
        assert await hasher.verify(stored, "pässwörd ☃") is True
        assert await hasher.verify(stored, "pässwörd ☃ ") is False  # never trimmed
        assert await hasher.verify(None, "pässwörd ☃") is False
        assert await hasher.verify("not a hash", "pässwörd ☃") is False
    finally:
        hasher.close()


async def test_hashing_runs_off_the_event_loop_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    hasher = PasswordHasher(workers=2)
    threads: list[str] = []
    original = argon2.PasswordHasher.hash

    def spy(self: argon2.PasswordHasher, password: str, *, salt: bytes | None = None) -> str:
        threads.append(threading.current_thread().name)
        return original(self, password)

    monkeypatch.setattr(argon2.PasswordHasher, "hash", spy)
    try:
        await asyncio.gather(*(hasher.hash(f"password {i}") for i in range(4)))
    finally:
        hasher.close()
    assert len(threads) == 4
    assert all(name.startswith("corelogin-hash") for name in threads)
    assert len(set(threads)) <= 2  # the pool is bounded


def test_needs_rehash_detects_old_parameters() -> None:
    hasher = PasswordHasher(workers=1)
    try:
        old = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash("x")
        assert hasher.needs_rehash(old) is True
        assert hasher.needs_rehash("garbage") is True
    finally:
        hasher.close()


def test_insecure_fast_hash_is_loud(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="corelogin.server"):
        hasher = PasswordHasher(workers=1, insecure_fast=True)
        hasher.close()
    assert "INSECURE" in caplog.text


def test_the_pool_is_sized_by_the_cores_this_process_may_use() -> None:
    hasher = PasswordHasher()
    try:
        assert hasher.workers == len(os.sched_getaffinity(0))
    finally:
        hasher.close()


async def test_a_full_hash_queue_refuses_at_once_with_829_and_retry_after() -> None:
    """One thread and room for one waiting job: of five at once, two are hashed and three are
    refused before any hashing, each with the time to wait."""
    hasher = PasswordHasher(workers=1, queue=1)
    try:
        outcomes = await asyncio.gather(
            *(hasher.hash("correct horse battery") for _ in range(5)), return_exceptions=True
        )
    finally:
        hasher.close()
    refused = [o for o in outcomes if isinstance(o, Busy)]
    hashed = [o for o in outcomes if isinstance(o, str)]
    assert len(hashed) == 2
    assert len(refused) == 3
    assert all(b.status == Status.TOO_MANY_REQUESTS and b.retry_after >= 1 for b in refused)


async def test_one_account_holds_at_most_its_share_of_the_queue() -> None:
    """A flood aimed at one account gets two places; another account still gets in."""
    hasher = PasswordHasher(workers=1, queue=100, per_account=2)
    try:
        stored = await hasher.hash("correct horse battery")
        flood = [hasher.verify(stored, "wrong", account="s\0donna") for _ in range(10)]
        other = hasher.verify(stored, "correct horse battery", account="s\0tina")
        outcomes = await asyncio.gather(*flood, other, return_exceptions=True)
    finally:
        hasher.close()
    flooded, tina = outcomes[:-1], outcomes[-1]
    assert sum(isinstance(o, Busy) for o in flooded) == 8
    assert sum(o is False for o in flooded) == 2
    assert tina is True
