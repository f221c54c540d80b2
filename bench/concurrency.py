"""Many logins in flight at once through one frame-mode Core.

The server runs in a subprocess with cheap hashes (``--insecure-fast-hash``), so that the client
is what is measured. All ``-n`` logins are started at once from the main thread, which then
pumps the listeners with ``core.wait()``. Prints events delivered (must equal ``-n``), errors
by status, throughput, latency percentiles from ``evt.tt`` and the client's peak RSS.

    python bench/concurrency.py [-n 1000]
"""

from __future__ import annotations

import argparse
import resource
import secrets
import statistics
import sys
import time
from collections import Counter

import _server

import corelogin


def peak_rss_mib() -> float:
    """This process's peak resident set size (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="logins in flight (default 1000)")
    parser.add_argument("--timeout", type=float, default=120, help="give up after (seconds)")
    args = parser.parse_args()

    key = secrets.token_urlsafe(16)
    params = {"username": "bench", "password": _server.PASSWORD}
    latencies: list[float] = []
    errors: Counter[str] = Counter()

    def on_login(evt: corelogin.Event) -> None:
        if evt.error:
            errors[f"{evt.status} {evt.error}"] += 1
        else:
            latencies.append(evt.tt)

    with (
        _server.server_process(key) as server,
        corelogin.init(server.url, key, deliver="frame") as core,
    ):
        created = core.users.create(params).result(30)
        assert created.error is None, created
        core.users.login(params).result(30)  # warm up: the connection pool, imports
        rss_before = peak_rss_mib()

        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(args.n):
            core.users.login(params, on_login)
        issued = time.perf_counter() - start
        finished = core.wait(timeout=args.timeout)  # runs the listeners here as events arrive
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu

    delivered = len(latencies) + errors.total()
    print(f"logins in flight   {args.n} (one frame-mode Core, pumped by core.wait())")
    print(f"all finished       {finished}")
    print(f"events delivered   {delivered} (expected {args.n})")
    print(f"errors             {errors.total()}")
    for message, count in errors.most_common(5):
        print(f"  {count:6d} x {message}")
    print(f"issuing the calls  {issued * 1000:.1f} ms ({issued / args.n * 1e6:.1f} us a call)")
    print(f"wall time          {elapsed:.3f} s")
    print(f"client CPU         {cpu:.3f} s, all threads ({cpu / elapsed:.0%} of one core)")
    print(f"throughput         {delivered / elapsed:.0f} logins/s")
    if len(latencies) >= 2:
        cuts = statistics.quantiles(latencies, n=100)
        p50, p99, worst = cuts[49], cuts[98], max(latencies)
        print(f"latency evt.tt     p50 {p50:.1f} ms   p99 {p99:.1f} ms   max {worst:.1f} ms")
    print(f"peak RSS (client)  {peak_rss_mib():.1f} MiB (before the burst {rss_before:.1f} MiB)")
    return 0 if finished and delivered == args.n else 1


if __name__ == "__main__":
    raise SystemExit(main())
