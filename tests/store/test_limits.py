"""The store's count of rate-limit hits (``count_hit``) on each backend: a window per key from
its first hit, a new window once it has ended, and concurrent hits each counted once. (That
every instance on one PostgreSQL database shares the counts is in test_postgres.py: a SQLite
database has one server process, which counts in memory.)"""

from __future__ import annotations

import asyncio

from corelogin.server.store import Store

NOW = 1_000_000.0


async def test_hits_are_counted_per_key_in_a_window_from_its_first_hit(store: Store) -> None:
    hits = [(key, NOW + offset) for key, offset in (("a", 0), ("a", 30), ("b", 31), ("a", 59.5))]
    hits += [("a", NOW + 60), ("a", NOW + 61), ("b", NOW + 61)]

    answers = [await store.count_hit(key, 60, now) for key, now in hits]

    assert answers == [
        (NOW, 1),
        (NOW, 2),
        (NOW + 31, 1),
        (NOW, 3),
        (NOW + 60, 1),  # the first window ended: a new one starts with this hit
        (NOW + 60, 2),
        (NOW + 31, 2),
    ]


async def test_concurrent_hits_of_one_key_are_each_counted_once(store: Store) -> None:
    answers = await asyncio.gather(*(store.count_hit("k", 60, NOW) for _ in range(50)))

    assert sorted(hits for _, hits in answers) == list(range(1, 51))
    assert {start for start, _ in answers} == {NOW}
