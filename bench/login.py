"""How long one login takes: the argon2id hash alone, and a whole SDK login round trip.

Both are measured in the same run, against an in-process server on SQLite, and printed as
medians with the round trip / hash ratio (the rest is HTTP, JSON, SQLite and the SDK).

    python bench/login.py [-n 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time

import corelogin
from corelogin.server import ServerConfig, start_server
from corelogin.server.passwords import PasswordHasher

PASSWORD = "correct horse battery staple"


async def main(rounds: int) -> None:
    hasher = PasswordHasher(workers=1)
    stored = await hasher.hash(PASSWORD)
    hash_ms = []
    for _ in range(rounds):
        start = time.perf_counter()
        await hasher.verify(stored, PASSWORD)
        hash_ms.append((time.perf_counter() - start) * 1000)
    hasher.close()

    with tempfile.TemporaryDirectory() as tmp:
        config = ServerConfig(app_key="bench", db=f"sqlite:///{tmp}/bench.sqlite3", port=0)
        async with (
            await start_server(config) as server,
            corelogin.init(server.url, "bench") as core,
        ):
            await core.users.create({"username": "bench", "password": PASSWORD})
            login_ms = []
            for _ in range(rounds):
                start = time.perf_counter()
                event = await core.users.login({"username": "bench", "password": PASSWORD})
                login_ms.append((time.perf_counter() - start) * 1000)
                assert event.error is None, event

    hash_median, login_median = statistics.median(hash_ms), statistics.median(login_ms)
    print(f"rounds                     {rounds}")
    print(f"argon2id verify, median    {hash_median:7.2f} ms")
    print(f"SDK login round trip, med. {login_median:7.2f} ms")
    print(f"round trip / hash          {login_median / hash_median:7.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=200, help="logins to time (default 200)")
    asyncio.run(main(parser.parse_args().n))
