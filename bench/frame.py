"""What ``core.process_events()`` costs a game's frame: with nothing ready, and with 100 events.

A frame at 60 fps has 16.7 ms. Two figures, each against a baseline measured in the same run:

- nothing ready: one ``process_events()`` call, against one call of an empty Python method
  (the least a per-frame hook can cost);
- 100 events ready: one ``process_events()`` that runs 100 queued listeners (each the listener,
  then the call's signal), against calling the same listener 100 times directly. The events
  are real calls answered without the network (a login with no password: 804, decided at once
  and queued exactly as a server's answer is), so that only delivery is timed.

Each figure is the median of many repeats; the share of a 60 fps frame is printed too.

    python bench/frame.py [--repeats 200]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable

import corelogin

FRAME_MS = 1000 / 60
EVENTS = 100
NOWHERE = "http://127.0.0.1:9"  # nothing is sent: every call here is decided locally


class Game:
    def __init__(self) -> None:
        self.failures = 0

    def on_login(self, evt: corelogin.Event[corelogin.Login]) -> None:
        if evt.error:
            self.failures += 1

    def tick(self) -> int:
        return 0


def per_call_ns(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(calls):
        fn()
    return (time.perf_counter_ns() - start) / calls


def idle(core: corelogin.Core, game: Game, repeats: int) -> tuple[float, float]:
    """Median ns per call of process_events() with nothing queued, and of the baseline."""
    sdk, base = [], []
    for _ in range(repeats):
        sdk.append(per_call_ns(core.process_events, 2000))
        base.append(per_call_ns(game.tick, 2000))
    return statistics.median(sdk), statistics.median(base)


def busy(core: corelogin.Core, game: Game, repeats: int) -> tuple[float, float]:
    """Median ns of one process_events() running 100 listeners, and of 100 direct calls."""
    sdk, base = [], []
    missing: dict[str, str] = {}  # no username, no password: 804 without the network
    answer = core.users.login(missing).result(1)
    for _ in range(repeats):
        for _ in range(EVENTS):
            core.users.login(missing, game.on_login)
        start = time.perf_counter_ns()
        ran = core.process_events()
        sdk.append(time.perf_counter_ns() - start)
        assert ran == EVENTS, ran
        start = time.perf_counter_ns()
        for _ in range(EVENTS):
            game.on_login(answer)
        base.append(time.perf_counter_ns() - start)
    return statistics.median(sdk), statistics.median(base)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    game = Game()
    gc.disable()  # a collection inside one repeat would be noise, not the SDK's cost
    try:
        with corelogin.init(NOWHERE, "bench-key") as core:
            idle_ns, empty_ns = idle(core, game, args.repeats)
            busy_ns, direct_ns = busy(core, game, args.repeats)
    finally:
        gc.enable()
    assert game.failures == 2 * EVENTS * args.repeats, game.failures
    print(f"process_events(), nothing ready: {idle_ns:8.0f} ns a frame")
    print(f"  empty method call (baseline):  {empty_ns:8.0f} ns")
    print(
        f"  ratio {idle_ns / empty_ns:.1f}; share of a 60 fps frame {idle_ns / 1e6 / FRAME_MS:.5%}"
    )
    print(f"process_events(), {EVENTS} events ready: {busy_ns / 1e3:8.1f} us a frame")
    print(f"  {EVENTS} direct listener calls (baseline): {direct_ns / 1e3:8.1f} us")
    print(
        f"  ratio {busy_ns / direct_ns:.1f}; {busy_ns / EVENTS / 1e3:.2f} us an event; "
        f"share of a 60 fps frame {busy_ns / 1e6 / FRAME_MS:.2%}"
    )


if __name__ == "__main__":
    main()
