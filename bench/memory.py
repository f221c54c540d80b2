"""Does a long-lived Core stay flat? Many calls through one Core, in each delivery mode.

The server runs in a subprocess with cheap hashes (``--insecure-fast-hash``). For each mode
(``frame``: calls from the main thread, listeners pumped by ``core.process_events()`` and
``core.wait()`` after every batch; ``thread``: listeners on the I/O thread, the main thread
blocks in ``core.wait()``; ``asyncio``: inside ``asyncio.run``, every request awaited) one Core
makes ``-n`` login calls in batches, a mix of four outcomes in equal parts: a successful login,
a wrong password (for a second user that only ever gets wrong passwords; the server has no
lockout), invalid params answered locally (``{}``: 804) and a call cancelled right after it was
made (817). Every call must get exactly one event.

The client's RSS (VmRSS, after ``gc.collect()``) is read after the first ``--warmup`` calls
(the baseline) and after the last one; once the Core is closed and the benchmark's own
references are dropped, the ``corelogin.Request`` objects still alive are counted (beyond any
an earlier mode left). Verdict "flat" when RSS grew by less than 5 MiB over the baseline of the
same run and no Request is left. The modes run one after another in one process, each against
its own baseline.

    python bench/memory.py [-n 20000] [--mode frame --mode thread --mode asyncio]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import secrets
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import _server
import attrs

import corelogin
from corelogin.delivery import MODES, Mode

GOOD = {"username": "bench", "password": _server.PASSWORD}
# Only ever given wrong passwords, so that a lockout, if the server had one, could not
# change the outcome of GOOD's logins.
WRONG = {"username": "bench-wrong", "password": "not the password"}
WRONG_USER = {"username": "bench-wrong", "password": _server.PASSWORD}
INVALID: dict[str, Any] = {}  # no username, no email: 804 without a round trip
KINDS = ("ok", "wrong", "invalid", "cancelled")
EXPECTED = {
    "ok": "ok",
    "wrong": f"{corelogin.Status.INVALID_CREDENTIALS:d}",
    "invalid": f"{corelogin.Status.MISSING:d}",
    "cancelled": f"{corelogin.Status.CANCELLED:d}",
}
FLAT_MIB = 5.0


def rss_mib() -> float:
    """This process's resident set size now (VmRSS), after a full collection."""
    gc.collect()
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # no /proc: the peak will do
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def live(kind: type) -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, kind))


@attrs.define
class Run:
    """What one mode did: the figures printed for it."""

    mode: Mode
    calls: int = 0
    seconds: float = 0.0
    rss_baseline: float = 0.0
    rss_end: float = 0.0
    outcomes: Counter[tuple[str, str]] = attrs.Factory(Counter)  # (kind, status or "ok")
    cancel_lost: int = 0  # cancel() returned False: the answer had come first
    live_requests: int = -1
    live_cores: int = -1

    @property
    def growth(self) -> float:
        return self.rss_end - self.rss_baseline

    @property
    def events(self) -> int:
        return self.outcomes.total()

    @property
    def unexpected(self) -> int:
        """Events whose outcome is not the one their kind calls for (a lost cancel aside)."""
        allowed = {(kind, EXPECTED[kind]) for kind in KINDS} | {("cancelled", "ok")}
        return sum(n for key, n in self.outcomes.items() if key not in allowed)

    @property
    def flat(self) -> bool:
        return self.growth < FLAT_MIB and self.live_requests == 0


def listener_for(run: Run, kind: str) -> Callable[[corelogin.Event], None]:
    def on_event(evt: corelogin.Event) -> None:
        run.outcomes[kind, "ok" if evt.error is None else str(evt.status)] += 1

    return on_event


class Batches:
    """Issues the mix of calls on one Core, a batch at a time; ``drain`` waits for a batch."""

    def __init__(self, run: Run, core: corelogin.Core, total: int, batch: int) -> None:
        self.run, self.core, self.total, self.batch = run, core, total, batch
        self.listeners = {kind: listener_for(run, kind) for kind in KINDS}

    def issue(self, start: int) -> list[corelogin.Request]:
        requests = []
        for i in range(start, min(start + self.batch, self.total)):
            kind = KINDS[i % len(KINDS)]
            params = WRONG if kind == "wrong" else INVALID if kind == "invalid" else GOOD
            request = self.core.users.login(params, self.listeners[kind])
            if kind == "cancelled" and not request.cancel():
                self.run.cancel_lost += 1
            requests.append(request)
        self.run.calls += len(requests)
        return requests


def run_blocking(url: str, key: str, mode: Mode, total: int, batch: int, warmup: int) -> Run:
    """frame and thread modes: calls from the main thread, which then waits for the batch."""
    run = Run(mode)
    with corelogin.init(url, key, deliver=mode) as core:
        batches = Batches(run, core, total, batch)
        start = time.perf_counter()
        for first in range(0, total, batch):
            requests = batches.issue(first)
            core.process_events()  # frame: what is ready already (the local 804s and 817s)
            if not core.wait(timeout=120):  # frame: runs the rest of the listeners here
                raise RuntimeError(f"{mode}: a batch did not finish within 120 s")
            del requests
            if first + batch == warmup:
                run.rss_baseline = rss_mib()
        run.seconds = time.perf_counter() - start
        run.rss_end = rss_mib()
        del batches
    return run


async def run_asyncio(url: str, key: str, total: int, batch: int, warmup: int) -> Run:
    """asyncio mode: calls from the loop, every request of a batch awaited."""
    run = Run("asyncio")
    async with corelogin.init(url, key, deliver="asyncio") as core:
        batches = Batches(run, core, total, batch)
        start = time.perf_counter()
        for first in range(0, total, batch):
            requests = batches.issue(first)
            for request in requests:
                evt = await request
                assert isinstance(evt, corelogin.Event), evt
            del requests, request, evt
            if first + batch == warmup:
                run.rss_baseline = rss_mib()
        run.seconds = time.perf_counter() - start
        run.rss_end = rss_mib()
        del batches
    return run


def measure(url: str, key: str, mode: Mode, total: int, batch: int, warmup: int) -> Run:
    before = live(corelogin.Request), live(corelogin.Core)  # 0 unless an earlier mode leaked
    if mode == "asyncio":
        run = asyncio.run(run_asyncio(url, key, total, batch, warmup))
    else:
        run = run_blocking(url, key, mode, total, batch, warmup)
    # The Core is closed and the run's locals are gone: nothing should hold a Request now.
    run.live_requests = live(corelogin.Request) - before[0]
    run.live_cores = live(corelogin.Core) - before[1]
    return run


def report(run: Run) -> None:
    ratio = run.rss_end / run.rss_baseline
    print(f"mode {run.mode}")
    rate = run.calls / run.seconds
    print(f"  calls            {run.calls} in {run.seconds:.1f} s ({rate:.0f} calls/s)")
    print(f"  events           {run.events} (expected {run.calls})")
    kinds = "   ".join(
        f"{kind}{'' if status == 'ok' else ' ' + status} x{n}"
        for (kind, status), n in sorted(run.outcomes.items())
    )
    print(f"  outcomes         {kinds}")
    if run.cancel_lost:
        print(f"  cancel too late  {run.cancel_lost} (the answer came first)")
    print(f"  RSS baseline     {run.rss_baseline:.1f} MiB (after the first warm-up calls)")
    print(f"  RSS end          {run.rss_end:.1f} MiB")
    print(f"  growth           {run.growth:+.2f} MiB   end/baseline {ratio:.3f}")
    print(f"  live Requests    {run.live_requests}   (live Cores {run.live_cores})")
    ok = run.flat and run.events == run.calls and not run.unexpected
    why = [] if run.events == run.calls else ["events != calls"]
    if run.unexpected:
        why.append(f"{run.unexpected} unexpected outcomes")
    if run.growth >= FLAT_MIB:
        why.append(f"grew {run.growth:.1f} MiB >= {FLAT_MIB:g}")
    if run.live_requests:
        why.append(f"{run.live_requests} Requests left")
    print("  verdict          " + ("flat" if ok else "NOT flat: " + ", ".join(why)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20000, help="calls per mode (default 20000)")
    parser.add_argument("--batch", type=int, default=500, help="calls in flight at once")
    parser.add_argument("--warmup", type=int, default=2000, help="calls before the baseline")
    parser.add_argument(
        "--mode", action="append", choices=MODES, help="a mode to run (default: all three)"
    )
    args = parser.parse_args()
    if args.batch < 1 or args.warmup < args.batch or args.warmup % args.batch:
        parser.error("--warmup must be a positive multiple of --batch")
    if args.n <= args.warmup:
        parser.error("-n must be larger than --warmup")
    modes: list[Mode] = args.mode or ["frame", "thread", "asyncio"]

    key = secrets.token_urlsafe(16)
    runs = []
    with _server.server_process(key) as server:
        url = server.url
        with corelogin.init(url, key, deliver="frame") as setup:
            for user in (GOOD, WRONG_USER):
                created = setup.users.create(user).result(30)
                assert created.error is None, created
        del setup
        print(f"calls per mode    {args.n} (batches of {args.batch}, baseline after {args.warmup})")
        print(f"mix               {', '.join(KINDS)} in equal parts")
        for mode in modes:
            run = measure(url, key, mode, args.n, args.batch, args.warmup)
            report(run)
            runs.append(run)
    return 0 if all(r.flat and r.events == r.calls and not r.unexpected for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
